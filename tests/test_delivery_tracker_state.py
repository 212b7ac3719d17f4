"""The tracker's saved state (issue 18 item 4, the saving part): a damaged or hostile file never
stops start-up nor takes memory without bound; a large state is saved less often."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from otelkv.delivery.tracker_state import MIN_STATE_BYTES, PersistentTracker, max_state_bytes
from otelkv.kubevirt import MigrationTracker
from tests.scenarios import BASE
from tests.test_kubevirt_tracker import migrated, migrating


def migration(i: int, text: int = 0) -> dict[str, Any]:
    pad = "x" * text
    return {
        "namespace": "default" + pad,
        "vm": f"vm-{i}{pad}",
        "name": f"mig-{i}",
        "uid": f"uid-{i}",
        "phase": "Failed",
        "source": "node01",
        "target": "node02",
        "failure": "f" * text,
        "first_seen": BASE.isoformat(),
        "touched": BASE.isoformat(),
        "events": 3,
        "fixed": [],
    }


def state(count: int, text: int = 0) -> dict[str, Any]:
    return {"version": 1, "now": BASE.isoformat(), "migrations": [migration(i, text) for i in range(count)]}


GOOD = json.dumps(state(3)).encode()
DAMAGED = {
    "truncated": GOOD[: len(GOOD) // 2],
    "garbage": os.urandom(4096),
    "empty": b"",
    "nul bytes": b"\x00" * 1000,
    "not utf-8": b'{"version": 1, "migrations": ["\xff\xfe"]}',
    "a list": b"[1, 2, 3]",
    "fixed is a dict": json.dumps({**state(1), "migrations": [{**migration(0), "fixed": {"a": 1}}]}).encode(),
    "fixed is a number": json.dumps({**state(1), "migrations": [{**migration(0), "fixed": 7}]}).encode(),
    "events is a string": json.dumps({**state(1), "migrations": [{**migration(0), "events": "3"}]}).encode(),
    "migrations is a dict": json.dumps({"version": 1, "migrations": {"a": 1}}).encode(),
    "a time that is a number": json.dumps({**state(1), "now": 12}).encode(),
    "a huge number": b'{"version": 1, "now": null, "migrations": [{"events": 1' + b"0" * 5000 + b"}]}",
    "deep nesting": b'{"version": 1, "migrations": [' + b"[" * 200_000,
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_damaged_state_file_starts_an_empty_tracker_with_one_log_line(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On main a file of the wrong types (``fixed: [[1]]``) raised TypeError out of start-up."""
    path = tmp_path / "m.json"
    path.write_bytes(DAMAGED[name])
    with caplog.at_level(logging.INFO, logger="otelkv.delivery.tracker_state"):
        tracker = PersistentTracker(path)
    assert tracker.restored == 0 and len(tracker) == 0
    lines = [r for r in caplog.records if r.name == "otelkv.delivery.tracker_state"]
    assert len(lines) == 1 and f"ignoring the saved migrations in {path}" in lines[0].getMessage()
    tracker.observe(migrated("node01", "node02", 5))  # and it works on
    assert tracker.save() and PersistentTracker(path).restored == 1


def test_a_state_file_over_the_bound_is_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """On main up to 64 MiB was parsed, about 2.8 times that at the peak (180 MiB: the pod's
    limit). The bound is 16 MiB for the default 10,000 migrations; a larger file is skipped unread."""
    assert max_state_bytes(10_000) == MIN_STATE_BYTES == 16 * 1024 * 1024
    path = tmp_path / "m.json"
    data = json.dumps(state(1)).encode()
    path.write_bytes(data[:-2] + b" " * (MIN_STATE_BYTES + 1) + data[-2:])  # valid JSON, just large
    with caplog.at_level(logging.WARNING, logger="otelkv.delivery.tracker_state"):
        tracker = PersistentTracker(path)
    assert tracker.restored == 0 and "more than the 16777216 read back" in caplog.text


def test_a_state_within_the_bound_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(state(10_000, text=253)))  # every string at Kubernetes' name limit
    assert path.stat().st_size < MIN_STATE_BYTES
    assert PersistentTracker(path).restored == 10_000


def test_the_saved_tracker_keeps_the_trackers_own_memory_bound(tmp_path: Path) -> None:
    """Found in review: the state file's read bound (16 MiB) took the attribute name of the
    tracker's memory bound (32 MiB) and replaced it, so a tracker with a store kept half as much."""
    saved = state(10_000, text=253)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(saved))
    plain = MigrationTracker()
    assert PersistentTracker(path).restored == plain.restore_state(saved) == 10_000


def test_a_large_state_is_saved_less_often(tmp_path: Path) -> None:
    """On main the whole state was re-serialised every second whatever its size (404 MB seen).
    A save that takes t seconds now waits 10 t before the next: a tenth of a core at most."""
    path = tmp_path / "m.json"
    path.write_text(json.dumps(state(10_000, text=253)))
    tracker = PersistentTracker(path, interval=0.02)
    tracker.start_saver()
    inodes: set[int] = set()
    stop = threading.Event()

    def changes() -> None:
        i = 0
        while not stop.is_set():
            tracker.observe(migrating("node01", i % 50, vm=f"busy-{i}"))
            i += 1
            time.sleep(0.005)

    writer = threading.Thread(target=changes)
    writer.start()
    started = time.monotonic()
    try:
        while time.monotonic() - started < 3:
            inodes.add(path.stat().st_ino)  # each save renames a new file over the old one
            time.sleep(0.005)
    finally:
        stop.set()
        writer.join()
        tracker.stop_saver()
    # Each save of ~11 MiB takes 0.1-0.2 s here: without the backoff, 3 s made 15-30 of them.
    assert 1 <= len(inodes) - 1 <= 6, len(inodes)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_state_that_is_no_file_starts_an_empty_tracker(tmp_path: Path, kind: str, caplog: Any) -> None:
    """A FIFO at the path blocked the start for good (reading waits for a writer); /dev/zero
    was read up to the bound for nothing."""
    path = tmp_path / "m.json"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    with caplog.at_level(logging.WARNING):
        assert PersistentTracker(path).restored == 0
    assert "not a regular file" in caplog.text
