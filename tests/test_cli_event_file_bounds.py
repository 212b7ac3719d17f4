"""An events file of many tiny JSON values is refused before it is parsed (the probe's finding 7:
40 million ``[]`` items, 160 MB, took 3.0 GB before the one-line refusal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelkv.commands.event_file import MAX_VALUES, EventFileError, parse_events
from tests.conftest import EXAMPLE
from tests.test_cli import otelkv


@pytest.mark.parametrize("tiny", ["[],", "{},", "0,", "-\n"], ids=["arrays", "objects", "numbers", "yaml"])
def test_more_values_than_the_limit_are_refused_unparsed(tiny: str) -> None:
    text = "[" + tiny * MAX_VALUES + "[]]" if tiny != "-\n" else tiny * (MAX_VALUES + 1)
    with pytest.raises(EventFileError, match=f"more than {MAX_VALUES} JSON/YAML values"):
        parse_events(text, "big.json")


def test_the_refusal_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text("[" + "[]," * (MAX_VALUES // 2 + 1) + "[]]")
    done = otelkv("migrations", str(path))
    assert done.returncode == 2
    assert done.stderr == (
        f"otelkv: {path}: more than {MAX_VALUES} JSON/YAML values (counted as [, {{, commas and lines: "
        f"{MAX_VALUES + 4}); otelkv's limit: give a shorter file\n"
    )


def test_kubectl_output_is_far_from_the_limit() -> None:
    """kubectl's JSON has one counted character every ~20 bytes: the limit is ~200 MiB of it."""
    text = EXAMPLE.read_text()
    counted = sum(text.count(c) for c in "[{,\n")
    assert len(text) / counted > 15 and parse_events(text)
