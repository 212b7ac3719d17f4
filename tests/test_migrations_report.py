"""``otelkv migrations`` as an SRE reads it: END, zone-labelled times, running ones, a summary,
filters, the failure reason fitted to the terminal, colour only on a terminal without NO_COLOR."""

from __future__ import annotations

import json
import os
import pty
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
    cut = migrations(str(EXAMPLE), env={"COLUMNS": "200"})
    table = cut.stdout.splitlines()[:-1]
    assert max(map(len, table)) <= 200
    assert LONG_REASON not in cut.stdout and "…" in cut.stdout
    wide = migrations(str(EXAMPLE), "--wide", env={"COLUMNS": "200"})
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
