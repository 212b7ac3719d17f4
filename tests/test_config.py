"""Configuration: defaults, every key, named bad configs, precedence, and the examples in docs."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelkv import config
from otelkv.commands import main
from otelkv.commands.preflight import preflight
from tests.conftest import ROOT

DATA = Path(__file__).parent / "data" / "config"
INVALID = yaml.safe_load((DATA / "invalid.yaml").read_text())


def test_defaults_are_valid_and_sidecar_friendly() -> None:
    cfg = config.load(environ={})
    assert cfg.forward.endpoint == "stdout"
    # The collector's own OTLP receiver holds 4317/4318 on the pod IP: otelkv takes others.
    assert cfg.grpc_listen.endswith(":4319") and cfg.http_listen.endswith(":4320")
    assert cfg.forward.timeout < 5.0  # answers inside the collector's per-attempt timeout


def test_every_key_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    cfg = config.load(DATA / "full.yaml", environ={})
    data = yaml.safe_load((DATA / "full.yaml").read_text())
    effective = config.to_dict(cfg)

    def same(expected: Any, got: Any, key: str) -> None:
        if isinstance(expected, dict):
            for k, v in expected.items():
                same(v, got[k], f"{key}.{k}")
        else:
            assert got == expected, key

    same(data, effective, "config")


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_configs_name_the_key(name: str, tmp_path: Path) -> None:
    case = INVALID[name]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(case["config"]))
    with pytest.raises(config.ConfigError) as caught:
        preflight(config.load(path, environ={}))  # what serve and check-config both run
    assert case["error"] in str(caught.value)


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("forward: {endpoint: 'http://from-file/otlp', tenant: file}\nlog_level: error\n")
    env = {"OTELKV_FORWARD_ENDPOINT": "http://from-env/otlp", "OTELKV_LOG_LEVEL": "warning"}
    cfg = config.load(path, environ=env, overrides={"forward.endpoint": "grpc://from-flag:4317", "log_level": None})
    assert cfg.forward.endpoint == "grpc://from-flag:4317"
    assert cfg.log_level == "warning"
    assert cfg.forward.tenant == "file"
    assert config.load(environ={"OTELKV_CONFIG": str(path)}).forward.tenant == "file"


def test_every_environment_variable_names_a_real_key() -> None:
    defaults = config.to_dict(config.Config())
    for name, key in config.ENVIRONMENT.items():
        node: Any = defaults
        for part in key.split("."):
            assert part in node, f"{name} -> {key}"
            node = node[part]


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("forward: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(bad, environ={})


def test_shipped_example_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOKI_PASSWORD", "x")
    paths = sorted((ROOT / "examples").glob("otelkv-*.yaml"))
    assert len(paths) >= 2
    for path in paths:
        assert config.load(path, environ={}).forward.endpoint.startswith("http")


def _main(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


@pytest.mark.parametrize("name", sorted(INVALID))
def test_check_config_and_serve_give_the_same_verdict(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check-config passed what serve refused (issue 20 item 3): both run one preflight now."""
    monkeypatch.delenv("OTELKV_CONFIG", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(INVALID[name]["config"]))
    checked = _main(["check-config", str(path)])
    served = _main(["serve", "--config", str(path)])  # refused before it binds anything
    assert checked[0] == served[0] == 2, (checked, served)
    assert INVALID[name]["error"] in checked[1] and INVALID[name]["error"] in served[1]


def test_check_config_warns_about_an_endpoint_ending_in_v1_logs(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("forward: {endpoint: 'http://loki.example/otlp/v1/logs', timeout: 2}\n")
    for offline in ([], ["--offline"]):
        code, stderr = _main(["check-config", *offline, str(path)])
        assert (
            code == 0 and "otelkv: warning: forward.endpoint http://loki.example/otlp/v1/logs already ends" in stderr
        ), stderr
