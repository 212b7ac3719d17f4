"""The configuration's YAML: a key given twice is an error naming both lines (PyYAML alone keeps
the last one silently); a merge (``<<: *base``) may still override what it brings in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otelkv import config
from otelkv.config.yaml_file import DuplicateKey, load_yaml


def test_a_top_level_key_given_twice_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "otelkv.yaml"
    path.write_text("forward:\n  endpoint: stdout\nlog_level: info\nforward:\n  endpoint: http://loki/otlp\n")
    with pytest.raises(
        config.ConfigError, match=r"otelkv.yaml:4:1: not valid YAML: key 'forward' given twice \(first on line 1\)"
    ):
        config.load(path=path, environ={})


def test_a_nested_key_given_twice_is_refused() -> None:
    with pytest.raises(DuplicateKey, match="key 'tenant' given twice"):
        load_yaml("forward:\n  tenant: a\n  endpoint: stdout\n  tenant: b\n")


def test_equal_keys_in_different_mappings_are_fine() -> None:
    assert load_yaml("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}


def test_a_merge_may_be_overridden() -> None:
    text = "base: &b\n  endpoint: stdout\n  tenant: t\nforward:\n  <<: *b\n  endpoint: http://loki/otlp\n"
    assert load_yaml(text)["forward"] == {"endpoint": "http://loki/otlp", "tenant": "t"}


def test_check_config_says_it_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("log_level: info\nlog_level: debug\n")
    run = subprocess.run(
        [sys.executable, "-m", "otelkv", "check-config", "--offline", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.strip().endswith("dup.yaml:2:1: not valid YAML: key 'log_level' given twice (first on line 1)")
    assert run.stderr.count("\n") == 1
