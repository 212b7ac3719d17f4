"""One otelkv per store (issue 18 item 5) and private store files (issue 18 item 9).

Item 5: two ``otelkv serve`` on one store both started and both sent its queue (343,900
acknowledged, 609,800 delivered, the queue gauge at -61,450). The store is now locked, as the
Collector's ``file_storage`` locks its files. Real processes: flock is per open file, and what
counts is what a second process sees.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from otelkv.delivery.files import StoreLock, StoreLocked, create_private, lock_path
from otelkv.delivery.store import Store
from otelkv.delivery.tracker_state import PersistentTracker, state_path
from otelkv.errors import ConfigError
from tests.loki_sink import LokiSink
from tests.reliability import numbered_events, requests_of, stored
from tests.serve_child import ENV
from tests.serve_child import ServeChild as Child
from tests.test_reliability_process import child_cleanup, write_config

__all__ = ["child_cleanup"]  # the fixture, used here


def otelkv(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otelkv", *args], capture_output=True, text=True, env=ENV, timeout=timeout, check=False
    )


def test_a_second_serve_on_the_same_store_exits_2_naming_the_store_and_the_holder(
    tmp_path: Path, child_cleanup: list[Child]
) -> None:
    """Issue 18 item 5: on main the second process started and both drained one queue."""
    sink = LokiSink().start()
    try:
        config = write_config(tmp_path, sink.url)
        first = Child(config)
        child_cleanup.append(first)
        second = otelkv("serve", "--config", str(config))  # its own ports (port 0): only the store is shared
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        store = tmp_path / "store.db"
        assert len(lines) == 1 and str(store) in lines[0] and f"pid {first.process.pid}" in lines[0], lines
        assert (tmp_path / "store.db.lock").read_text().strip() == str(first.process.pid)

        # dead-letter replay writes the store: refused the same way; list only reads: it works
        replay = otelkv("dead-letter", "replay", "--config", str(config))
        assert replay.returncode == 2 and f"pid {first.process.pid}" in replay.stderr, replay.stderr
        listing = otelkv("dead-letter", "list", "--config", str(config))
        assert listing.returncode == 0 and "ID" in listing.stdout, listing.stderr

        first.process.send_signal(signal.SIGKILL)  # the kernel releases the lock, however it ends
        first.process.wait()
        again = Child(config)
        child_cleanup.append(again)
        assert (tmp_path / "store.db.lock").read_text().strip() == str(again.process.pid)
    finally:
        sink.stop()


def test_the_lock_is_held_for_the_store_s_life_and_released_by_close(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = Store(path, max_bytes=1000, max_records=100, max_dead_letters=3)
    with pytest.raises(StoreLocked, match=rf"the store {path} is in use by another otelkv process \(pid {os.getpid()}"):
        Store(path, max_bytes=1000, max_records=100, max_dead_letters=3)  # another open file: flock says no
    with pytest.raises(StoreLocked):
        StoreLock.check(str(path))
    store.close()
    store.close()  # twice: harmless
    StoreLock.check(str(path))
    Store(path, max_bytes=1000, max_records=100, max_dead_letters=3).close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_file_beside_the_store_is_private(tmp_path: Path) -> None:
    """Issue 18 item 9: the store, its WAL, the marker and the tracker's state were created 0644
    though they hold queued log data; the lock file is new. All 0600, whatever the umask allows."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "store.db"
        store = Store(path, max_bytes=10_000, max_records=100, max_dead_letters=3)
        store.put(b"queued log data", 1)
        store.dead_letter(b"refused log data", 1, "refused")
        tracker = PersistentTracker(state_path(str(path)), interval=0)
        tracker.save()
        files = {p.name: _mode(p) for p in tmp_path.iterdir()}
        store.close()
    finally:
        os.umask(old)
    expected = {f"store.db{suffix}" for suffix in ("", "-wal", "-shm", ".state", ".lock", ".migrations.json")}
    assert expected <= set(files), files
    assert {name: mode for name, mode in files.items() if mode != 0o600} == {}


def test_files_an_older_otelkv_made_0644_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store(path, max_bytes=10_000, max_records=100, max_dead_letters=3).close()
    for name in ("store.db", "store.db.state", "store.db.lock"):
        os.chmod(tmp_path / name, 0o644)
    store = Store(path, max_bytes=10_000, max_records=100, max_dead_letters=3)
    store.put(b"x", 1)
    store.close()
    assert {p.name: _mode(p) for p in tmp_path.iterdir() if _mode(p) != 0o600} == {}


def test_two_paths_to_one_store_take_one_lock(tmp_path: Path) -> None:
    """A symlinked directory or a symlink to the store file: the lock is beside the real file."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "alias.db").symlink_to(real / "q.db")
    store = Store(real / "q.db", max_bytes=1000, max_records=100, max_dead_letters=3)
    try:
        for other in (tmp_path / "link" / "q.db", tmp_path / "alias.db"):
            with pytest.raises(StoreLocked):
                Store(other, max_bytes=1000, max_records=100, max_dead_letters=3)
    finally:
        store.close()


def test_replay_works_once_serve_has_stopped(tmp_path: Path, child_cleanup: list[Child]) -> None:
    """The way to replay: stop serve (scale to 0), replay, start it again."""
    sink = LokiSink().start()
    try:
        config = write_config(tmp_path, sink.url)
        store = Store(tmp_path / "store.db", max_bytes=10**6, max_records=1000, max_dead_letters=10)
        store.dead_letter(requests_of(numbered_events(3, "lock"), 3)[0].SerializeToString(), 3, "refused")
        store.close()
        replay = otelkv("dead-letter", "replay", "--config", str(config))
        assert replay.returncode == 0, replay.stderr
        assert set(stored(sink)) == {f"lock-{i:05d}" for i in range(3)}
    finally:
        sink.stop()


def test_a_planted_lock_file_is_never_followed_nor_blocked_on(tmp_path: Path) -> None:
    """Found by probing: a symlink at ``<store>.lock`` made otelkv truncate its target, write its
    pid into it and chmod it 0600; a FIFO there ended the start with ``Invalid argument``."""
    store = str(tmp_path / "otelkv.db")
    victim = tmp_path / "victim.txt"
    victim.write_text("someone's data\n")
    victim.chmod(0o644)
    lock_path(store).symlink_to(victim)
    with pytest.raises(ConfigError, match=r"its lock file .*otelkv\.db\.lock: a symlink"):
        StoreLock(store)
    assert victim.read_text() == "someone's data\n"
    assert victim.stat().st_mode & 0o777 == 0o644
    lock_path(store).unlink()
    os.mkfifo(lock_path(store))
    with pytest.raises(ConfigError, match=r"its lock file .*: not a regular file"):
        StoreLock(store)


def test_tighten_leaves_a_symlinks_target_alone(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("x")
    victim.chmod(0o644)
    (tmp_path / "otelkv.db-wal").symlink_to(victim)
    create_private(tmp_path / "otelkv.db-wal")
    assert victim.stat().st_mode & 0o777 == 0o644
