"""``otelkv migrations`` as an SRE reads it: END, zone-labelled times, running ones, a summary,
filters, the failure reason fitted to the terminal, colour only on a terminal without NO_COLOR."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, ROOT

ENV = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")} | {"PYTHONPATH": str(ROOT)}
LONG_REASON = "Live migration failed error encountered during MigrateToURI3 libvirt api call"


def migrations(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otelkv", "migrations", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**ENV, **(env or {})},
        cwd=ROOT,
        timeout=60,
    )


def on_a_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    """What ``otelkv migrations`` writes when its stdout is a real pseudo-terminal."""
    leader, follower = pty.openpty()
    environ = {**ENV, "COLUMNS": "250", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "otelkv", "migrations", *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=environ,
        cwd=ROOT,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_the_table_has_end_times_labelled_utc_and_a_summary() -> None:
    done = migrations(str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:9] == ["VM", "MIGRATION", "SOURCE", "→", "TARGET", "OUTCOME", "START", "(UTC)", "END"]
    assert lines[0].split()[-4:] == ["DURATION", "TRIGGER", "FAILURE", "REASON"]
    web02 = next(line for line in lines if "tenant-a/web-02" in line)
    assert "2026-11-20 09:06:00  2026-11-20 09:08:36  2m36s" in web02  # the handler's word ends it (issue 21)
    assert lines[-1] == "4 migrations: 2 succeeded, 2 failed, 0 running; duration p50 31s, p95 2m36s (of 4 finished)"


def test_local_times_are_labelled_with_their_zone() -> None:
    done = migrations(str(EXAMPLE), "--local", env={"TZ": "Asia/Tokyo"})
    assert "START (JST)" in done.stdout and "END (JST)" in done.stdout
    assert "2026-11-20 18:06:00  2026-11-20 18:08:36" in done.stdout  # 09:06 UTC


def test_a_running_migration_shows_the_time_so_far(tmp_path: Path) -> None:
    items = json.loads(EXAMPLE.read_text())["items"]
    finished = ("Migrated", "SuccessfulMigration")
    fedora = ("fedora-vm", "kubevirt-migrate-vm-x7k2p")
    unfinished = [e for e in items if not (e["reason"] in finished and e["involvedObject"]["name"] in fedora)]
    assert len(unfinished) < len(items)
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"items": unfinished}))
    done = migrations(str(path), "--phase", "running")
    [row] = [line for line in done.stdout.splitlines() if "fedora-vm" in line]
    assert "so far" in row  # days since the recording: the clock is now, not the last event
    assert done.stdout.splitlines()[-1].startswith("1 migration: 0 succeeded, 0 failed, 1 running")


@pytest.mark.parametrize(
    ("args", "vms"),
    [
        (("--namespace", "tenant-a"), {"tenant-a/web-01", "tenant-a/web-02"}),
        (("--vm", "fedora-vm"), {"virtualmachines/fedora-vm"}),
        (("--phase", "FAILED"), {"tenant-a/web-02", "virtualmachines/rhel9-db.prod"}),
        (("--phase", "succeeded", "--namespace", "tenant-a"), {"tenant-a/web-01"}),
        (("--since", "2026-11-20T09:09:00Z"), {"virtualmachines/fedora-vm", "virtualmachines/rhel9-db.prod"}),
        (("--since", "2026-11-20T10:09:00+01:00"), {"virtualmachines/fedora-vm", "virtualmachines/rhel9-db.prod"}),
    ],
)
def test_filters(args: tuple[str, ...], vms: set[str]) -> None:
    done = migrations(str(EXAMPLE), "--output", "jsonl", *args)
    assert done.returncode == 0, done.stderr
    assert {f"{m['namespace']}/{m['vm']}" for m in map(json.loads, done.stdout.splitlines())} == vms


def test_a_filter_that_keeps_nothing_says_so() -> None:
    done = migrations(str(EXAMPLE), "--since", "1h")  # the recording is older
    assert done.returncode == 0
    assert done.stderr == "otelkv: none of the 4 migrations match the filters\n"
    assert done.stdout.splitlines()[-1] == "0 migrations: 0 succeeded, 0 failed, 0 running"


def test_the_failure_reason_is_cut_to_the_width_unless_wide() -> None:
    cut = migrations(str(EXAMPLE), env={"COLUMNS": "230"})  # the table without the reason: ~200
    table = cut.stdout.splitlines()[:-1]
    assert max(map(len, table)) <= 230
    assert LONG_REASON not in cut.stdout and "…" in cut.stdout
    wide = migrations(str(EXAMPLE), "--wide", env={"COLUMNS": "230"})
    assert LONG_REASON in wide.stdout and "…" not in wide.stdout
    piped = migrations(str(EXAMPLE))  # no terminal, no COLUMNS: a pipe gets it all
    assert LONG_REASON in piped.stdout


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    assert "\x1b[31mFailed\x1b[0m" in on_a_terminal(str(EXAMPLE))
    assert "\x1b[32mSucceeded\x1b[0m" in on_a_terminal(str(EXAMPLE))
    assert "\x1b[" not in on_a_terminal(str(EXAMPLE), env={"NO_COLOR": "1"})
    assert "\x1b[" not in migrations(str(EXAMPLE)).stdout


def test_json_is_one_array_and_jsonl_one_object_a_line() -> None:
    array = json.loads(migrations(str(EXAMPLE), "--output", "json").stdout)
    lines = [json.loads(line) for line in migrations(str(EXAMPLE), "--output", "jsonl").stdout.splitlines()]
    assert array == lines and len(array) == 4


def test_events_without_migrations_say_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "pods.json"
    pod = {
        "involvedObject": {"kind": "Pod", "name": "p"},
        "reason": "Pulled",
        "message": "pulled",
        "lastTimestamp": "2026-11-20T09:00:00Z",
    }
    path.write_text(json.dumps({"items": [pod]}))
    done = migrations(str(path))
    assert done.returncode == 0
    assert "no KubeVirt migrations in 1 events" in done.stderr and "VirtualMachineInstanceMigration" in done.stderr


def test_with_colour_the_failure_reason_fills_the_width_exactly() -> None:
    """Issue 20 item 12: the colour codes were counted as width, cutting the reason 9 characters
    short of the terminal (5 for the colour, 4 for the reset)."""
    import re  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from otelkv.commands.event_file import read_event_file  # noqa: PLC0415
    from otelkv.commands.migrations_table import TableStyle, render_table, track  # noqa: PLC0415

    found = track(read_event_file(str(EXAMPLE)))
    assert any(m.failure_reason for m in found)
    now = datetime.now(UTC)
    for width in range(120, 260, 3):
        plain = render_table(found, TableStyle(now=now, zone=UTC, width=width, colour=False))
        coloured = render_table(found, TableStyle(now=now, zone=UTC, width=width, colour=True))
        assert "\x1b[" in coloured
        assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def _shifted(items: list[dict[str, object]], hours: int, suffix: str) -> list[dict[str, object]]:
    """``items`` moved ``hours`` later, their objects and migrations renamed with ``suffix``."""
    text = json.dumps(items)
    for day_hour in sorted({t[:13] for t in re.findall(r"2026-11-20T\d\d:\d\d:\d\dZ", text)}):
        hour = int(day_hour[11:13]) + hours
        text = text.replace(day_hour + ":", f"2026-11-{20 + hour // 24:02d}T{hour % 24:02d}:")
    for name in ("kubevirt-migrate-vm-x7k2p", "kubevirt-migrate-vm-2hkbc", "kubevirt-evacuation-4tq8z",
                 "kubevirt-workload-update-n7vds"):  # fmt: skip
        text = text.replace(name, name + suffix)
    moved: list[dict[str, object]] = json.loads(text)
    for item in moved:
        involved = item["involvedObject"]
        assert isinstance(involved, dict)
        involved["uid"] = f"{involved['uid']}-{suffix}"
    return moved


def test_a_report_never_loses_rows_by_age(tmp_path: Path) -> None:
    """Issue 22: the tracker's 6 h time-to-live (meant for serve) dropped every migration 6 hours
    older than the newest event of the input."""
    items = json.loads(EXAMPLE.read_text())["items"]
    path = tmp_path / "a-day.json"
    path.write_text(json.dumps({"items": items + _shifted(items, 7, "b") + _shifted(items, 20, "c")}))
    done = migrations(str(path), "--output", "json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert len(found) == 12
    assert [m["started"][:13] for m in found][::4] == ["2026-11-20T09", "2026-11-20T16", "2026-11-21T05"]


def test_the_trigger_column_and_filter() -> None:
    done = migrations(str(EXAMPLE))
    header, _, *rows = done.stdout.splitlines()[:-1]
    assert header.split()[-3:] == ["TRIGGER", "FAILURE", "REASON"]
    start = header.index("TRIGGER")
    shown = {row.split()[0]: row[start:].split()[0] for row in rows}
    assert shown == {
        "virtualmachines/rhel9-db.prod": "evacuation",
        "tenant-a/web-02": "workload-update",
        "virtualmachines/fedora-vm": "user",
        "tenant-a/web-01": "user",
    }
    for trigger, vms in (("evacuation", {"rhel9-db.prod"}), ("user", {"fedora-vm", "web-01"}), ("other", set())):
        chosen = migrations(str(EXAMPLE), "-o", "jsonl", "--trigger", trigger)
        assert {json.loads(line)["vm"] for line in chosen.stdout.splitlines()} == vms
        assert all(json.loads(line)["trigger"] == trigger for line in chosen.stdout.splitlines())
    wrong = migrations(str(EXAMPLE), "--trigger", "drain")
    assert wrong.returncode == 2 and "--trigger: invalid choice: 'drain'" in wrong.stderr


def test_a_cluster_column_only_for_more_than_one_cluster() -> None:
    from dataclasses import replace  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from otelkv.commands.event_file import read_event_file  # noqa: PLC0415
    from otelkv.commands.migrations_table import Filters, TableStyle, render_table, track  # noqa: PLC0415

    found = track(read_event_file(str(EXAMPLE)))
    style = TableStyle(now=datetime.now(UTC))
    assert "CLUSTER" not in render_table(found, style)
    one = [replace(m, cluster="east") for m in found]
    assert "CLUSTER" not in render_table(one, style)
    two = [replace(m, cluster="east" if i % 2 else "west") for i, m in enumerate(found)]
    table = render_table(two, style).splitlines()
    assert table[0].split()[:2] == ["CLUSTER", "VM"]
    assert sorted(line.split()[0] for line in table[2:-1]) == ["east", "east", "west", "west"]
    assert [m.cluster for m in two if Filters(cluster="west").keep(m)] == ["west", "west"]
