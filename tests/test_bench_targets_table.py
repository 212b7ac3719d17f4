"""The table ``make bench`` writes into docs/performance.md (bench/targets_table.py): figures beside their
floor or limit, each target judged from the figures, missing ones shown as not measured."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "bench"))  # as bench/bench.py finds it: beside the script

import targets_table as report  # noqa: E402

ALL = {
    "floor": 400_000.0,
    "native": 40_000.0,  # 10x: not met
    "python": 25_000.0,  # 16x: met
    "cpu_1000": 29.5,
    "cpu_1000_rate": 10_010.0,
    "cpu_100": 41.0,
    "cpu_100_rate": 9_990.0,
    "idle_rss": 44.0,
    "idle_anon": 23.0,  # anonymous over: not met
    "hostile_native": 140.0,
    "hostile_python": 150.0,
    "passthrough_floor": 300_000.0,
    "passthrough": 250_000.0,
}


def rows(text: str) -> dict[str, list[str]]:
    return {
        cells[0]: cells[1:]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| measure")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }


def test_each_target_is_judged_from_the_figures() -> None:
    table = rows(report.table(ALL, "2026-12-07"))
    assert len(table) == len(report.MEASURES)
    verdicts = {what: cells[2] for what, cells in table.items()}
    assert verdicts["enrichment, native core"] == "**not met**"
    assert table["enrichment, native core"][0] == "10.0x (40,000 records/s; floor 400,000)"
    assert verdicts["enrichment, pure Python (`OTELKV_NO_EXTENSIONS=1`)"] == "met"
    assert verdicts["CPU of one core at 10,000 records/s, 1,000 per request (native)"] == "met"
    assert verdicts["CPU of one core at 10,000 records/s, 100 per request (native)"] == "**not met**"
    assert verdicts["idle RSS, sidecar configuration (total / anonymous)"] == "**not met**"
    assert verdicts["peak RSS, hostile mix, pure Python"] == "met"  # the bound is inclusive
    assert verdicts["pass-through (Pod events), native core"] == "met"
    assert table["pass-through (Pod events), native core"][0].startswith("1.20x")


def test_a_figure_the_run_did_not_reach_is_not_measured() -> None:
    figures = {k: v for k, v in ALL.items() if k != "native"}
    table = rows(report.table(figures, "today"))
    assert table["enrichment, native core"] == ["not measured", "≤ 8x", ""]
    assert table["enrichment, pure Python (`OTELKV_NO_EXTENSIONS=1`)"][2] == "met"


def test_write_replaces_only_the_marked_table(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nbefore\n{report.BEGIN}\nold table\n{report.END}\nafter\n")
    report.write(doc, ALL, "2026-12-07")
    text = doc.read_text()
    assert "old table" not in text
    assert text.startswith("# Performance\n\nbefore\n")
    assert text.endswith(f"{report.END}\nafter\n")
    assert "`make bench`, 2026-12-07:" in text
    doc.write_text("no markers\n")
    with pytest.raises(SystemExit, match=re.escape(f"no {report.BEGIN}")):
        report.write(doc, ALL, "2026-12-07")


def test_docs_performance_holds_a_table_make_bench_can_replace() -> None:
    text = (ROOT / "docs" / "performance.md").read_text()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    assert text.index(report.BEGIN) < text.index(report.END)
