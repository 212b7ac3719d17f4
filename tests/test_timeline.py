"""``otelkv migrations --timeline``: one line a migration under its source node, a bar from start
to end, ✗ for a failure, ▶ for one still running, fitted to the terminal width."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from otelkv.commands.event_file import read_event_file
from otelkv.commands.migrations_table import track
from otelkv.commands.timeline import render_timeline
from tests.conftest import EXAMPLE
from tests.test_cli_loki import unfinished_example
from tests.test_migrations_report import migrations

NOW = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)


def bars(text: str) -> dict[str, str]:
    """Each migration line's label and its bar (between the two │)."""
    return {line.split("│")[0].strip(): line.split("│")[1] for line in text.splitlines() if line.count("│") == 2}


def test_one_line_a_migration_grouped_by_source_node() -> None:
    found = track(read_event_file(str(EXAMPLE)))
    text = render_timeline(found, width=120, now=NOW)
    lines = text.splitlines()
    assert set(bars(text)) == {f"{m.namespace}/{m.vm_name}" for m in found} and len(bars(text)) == 4
    assert lines.index("node01") < lines.index("node03") < lines.index("worker-a.lab.example.com")
    under_node01 = lines[lines.index("node01") + 1 : lines.index("node03")]
    assert [line.split("│")[0].strip() for line in under_node01] == ["tenant-a/web-02", "virtualmachines/fedora-vm"]
    drawn = bars(text)
    assert drawn["tenant-a/web-02"].rstrip().endswith("✗") and "✗" not in drawn["tenant-a/web-01"]
    # the bars are where the times are: web-02 (09:06-09:08:37) starts at the left edge, rhel9 (09:13) at the right
    assert drawn["tenant-a/web-02"].startswith("█") and drawn["virtualmachines/rhel9-db.prod"].endswith("✗")
    assert len(drawn["tenant-a/web-02"].strip()) > 3 * len(drawn["virtualmachines/fedora-vm"].strip())


def test_it_fits_the_width() -> None:
    found = track(read_event_file(str(EXAMPLE)))
    for width in (40, 72, 100, 160, 300):
        text = render_timeline(found, width=width, now=NOW)
        assert max(len(line) for line in text.splitlines()) <= width, width
    wide = bars(render_timeline(found, width=300, now=NOW))
    narrow = bars(render_timeline(found, width=100, now=NOW))
    assert len(next(iter(wide.values()))) > len(next(iter(narrow.values())))


def test_a_running_migration_runs_to_now(tmp_path: Path) -> None:
    found = track(read_event_file(str(unfinished_example(tmp_path))))
    text = render_timeline(found, width=120, now=NOW)
    [fedora] = [line for line in text.splitlines() if "fedora-vm" in line]
    assert fedora.split("│")[1].rstrip().endswith("▶") and "so far" in fedora


def test_nothing_to_draw_says_so() -> None:
    found = track(read_event_file(str(EXAMPLE)))
    timeless = [replace(m, started=None, ended=None) for m in found]
    assert render_timeline(timeless, width=80, now=NOW) == "no migrations with a start or end time to draw\n"
    assert render_timeline([], width=80) == "no migrations with a start or end time to draw\n"


def test_the_command_draws_it_in_the_terminal_width() -> None:
    done = migrations(str(EXAMPLE), "--timeline", env={"COLUMNS": "90"})
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 90
    assert len(bars(done.stdout)) == 4
    filtered = migrations(str(EXAMPLE), "--timeline", "--phase", "failed", env={"COLUMNS": "90"})
    assert set(bars(filtered.stdout)) == {"tenant-a/web-02", "virtualmachines/rhel9-db.prod"}


def test_a_day_long_timeline_ticks_hours() -> None:
    found = track(read_event_file(str(EXAMPLE)))
    spread = [replace(m, started=NOW - timedelta(hours=i * 5), ended=NOW - timedelta(hours=i * 5 - 1)) for i, m in
              enumerate(found)]  # fmt: skip
    axis = render_timeline(spread, width=120, now=NOW).splitlines()[-1]
    assert "╵" in axis and ":" in axis and json.dumps(axis).count(":") >= 2
