"""The standing adversarial suite, delivery side (issue 18): a Loki that misbehaves, a store
directory that is not what it seems, damaged tracker state — in queue mode, each ending with
acknowledged records = delivered records (duplicates counted, dead letters replayed).

Bounded in time: a few seconds each in ``make test``; ``OTELKV_HOSTILE=full`` (``make hostile``)
makes the slow Loki take the 30 s of the finding and sends ten times the records.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otelkv.commands import main
from otelkv.errors import ConfigError
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.reliability import Collector, numbered_events, requests_of, stored, wait_until

pytestmark = pytest.mark.hostile

FULL = os.environ.get("OTELKV_HOSTILE") == "full"
SCALE = 10 if FULL else 1
SLOW = 30.0 if FULL else 4.0  # seconds the slow Loki takes (the finding's 30 s in full)
BATCH = 10
FAST = {
    "delivery.mode": "queue",
    "delivery.retry.initial_interval": 0.02,
    "delivery.retry.max_interval": 0.2,
    "delivery.retry.max_elapsed": 60.0,
}


def serve(sink: LokiSink, store: Path, **more: Any) -> Service:
    svc = Service(make_config(sink.url, **{**FAST, "delivery.store_path": str(store), **more}))
    svc.start()
    return svc


def settle(sink: LokiSink, svc: Service, store: Path, acknowledged: list[str], *, duplicates: int) -> None:
    """Wait for the queue to drain, stop, replay the dead letters; then every acknowledged record
    is stored, and no more than ``duplicates`` copies beyond one each."""
    assert svc.store is not None
    assert wait_until(lambda: svc.store is not None and svc.store.stats()[0] == 0, 60), svc.store.stats()
    svc.stop(5)
    config = store.parent / "replay.yaml"
    config.write_text(f"forward: {{endpoint: '{sink.url}', tenant: kubevirt}}\ndelivery: {{store_path: '{store}'}}\n")
    assert main(["dead-letter", "replay", "--config", str(config)]) == 0
    counts = stored(sink)
    assert set(counts) == set(acknowledged), set(acknowledged) - set(counts)
    assert sum(counts.values()) - len(counts) <= duplicates, sum(counts.values()) - len(counts)


def send(svc: Service, count: int, prefix: str) -> list[str]:
    client = Collector(f"127.0.0.1:{svc.grpc_port}", max_attempts=5000)
    client.send_all(requests_of(numbered_events(count, prefix), BATCH))
    assert len(client.acknowledged) == count
    return client.acknowledged


@pytest.fixture
def sink() -> Iterator[LokiSink]:
    running = LokiSink().start()
    yield running
    running.stop()


def test_loki_answering_413_then_recovering(sink: LokiSink, tmp_path: Path) -> None:
    """Every piece of a split refused: the pieces become dead letters, none is lost."""
    html = Scripted(413, {"Content-Type": "text/html"}, b"<html><h1>413 Request Entity Too Large</h1></html>")
    sink.script.extend([html] * 40)
    svc = serve(sink, tmp_path / "store.db")
    acknowledged = send(svc, 50 * SCALE, "h413")
    settle(sink, svc, tmp_path / "store.db", acknowledged, duplicates=0)


def test_loki_closing_mid_response_then_recovering(sink: LokiSink, tmp_path: Path) -> None:
    """Loki stores, then the connection closes in the status line: otelkv cannot know, sends again
    (at-least-once): each cut costs at most one batch of duplicates."""
    cuts = 6
    sink.script.extend([Scripted(None, cut=True)] * cuts)
    svc = serve(sink, tmp_path / "store.db")
    acknowledged = send(svc, 50 * SCALE, "cut")
    settle(sink, svc, tmp_path / "store.db", acknowledged, duplicates=cuts * BATCH)


def test_loki_taking_30_seconds_then_recovering(sink: LokiSink, tmp_path: Path) -> None:
    """A Loki slower than ``forward.timeout`` (1 s) that still stores: otelkv times out and sends
    again; once the slow answers have come, each one is at most one batch of duplicates."""
    slow = 2
    sink.script.extend([Scripted(None, delay=SLOW)] * slow)
    svc = serve(sink, tmp_path / "store.db")
    acknowledged = send(svc, 40 * SCALE, "slow")
    started = time.monotonic()
    assert wait_until(lambda: set(stored(sink)) >= set(acknowledged), SLOW + 30)
    time.sleep(max(0.0, SLOW + 0.5 - (time.monotonic() - started)))  # the slow handlers store too
    settle(sink, svc, tmp_path / "store.db", acknowledged, duplicates=slow * BATCH)


def test_loki_throttling_with_a_huge_retry_after_then_recovering(sink: LokiSink, tmp_path: Path) -> None:
    """``429 Retry-After: 99999`` dead-lettered the whole queue on main; it is a pause."""
    sink.script.extend([Scripted(429, {"Retry-After": "99999"})] * (100 if FULL else 15))
    svc = serve(sink, tmp_path / "store.db", **{"delivery.dead_letter_max_entries": 3})
    acknowledged = send(svc, 60 * SCALE, "thr")
    assert svc.store is not None
    settle(sink, svc, tmp_path / "store.db", acknowledged, duplicates=0)
    assert sum(1 for headers in sink.requests if headers) >= 15  # it was asked again, not given up on


def test_a_store_in_a_symlinked_directory(sink: LokiSink, tmp_path: Path) -> None:
    real = tmp_path / "volume"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    store = tmp_path / "link" / "store.db"
    port = sink.port
    sink.stop()
    svc = serve(sink, store)
    acknowledged = send(svc, 30 * SCALE, "sym")
    with pytest.raises(Exception, match="in use by another otelkv process"):
        Service(make_config(sink.url, **{**FAST, "delivery.store_path": str(real / "store.db")}))
    back = LokiSink(port=port).start()
    try:
        settle(back, svc, store, acknowledged, duplicates=0)
    finally:
        back.stop()
    assert {p.name for p in real.iterdir()} >= {"store.db", "store.db.lock", "store.db.state"}


def test_a_read_only_store_directory_is_refused_at_start(sink: LokiSink, tmp_path: Path) -> None:
    """Not writable (a read-only volume): serve does not start, naming the key."""
    volume = tmp_path / "ro"
    volume.mkdir()
    remount = _readonly_mount(volume)
    try:
        with pytest.raises(ConfigError, match=r"delivery\.store_path"):
            Service(make_config(sink.url, **{**FAST, "delivery.store_path": str(volume / "store.db")}))
    finally:
        remount("rw")


def test_a_store_directory_turning_read_only_then_writable(sink: LokiSink, tmp_path: Path) -> None:
    """The volume goes read-only under a running serve (a remount after an I/O error): new data
    is refused as retryable, nothing acknowledged is lost; writable again, all is delivered."""
    volume = tmp_path / "vol"
    volume.mkdir()
    remount = _readonly_mount(volume, now=False)
    try:
        svc = serve(sink, volume / "store.db")
        acknowledged = send(svc, 20, "before")
        remount("ro")
        client = Collector(f"127.0.0.1:{svc.grpc_port}", max_attempts=100_000)
        import threading  # noqa: PLC0415

        sender = threading.Thread(target=client.send_all, args=(requests_of(numbered_events(20, "during"), BATCH),))
        sender.start()
        time.sleep(1.0)
        remount("rw")
        sender.join(60)
        assert not sender.is_alive()
        settle(sink, svc, volume / "store.db", acknowledged + client.acknowledged, duplicates=BATCH)
    finally:
        remount("rw")


DAMAGED_STATES = {
    "truncated": b'{"version": 1, "now": null, "migrations": [{"namespace": "default", "vm": "vm',
    "garbage": os.urandom(8192),
    "wrong types": b'{"version": 1, "migrations": [{"fixed": 7, "events": "x"}]}',
    "deep": b"[" * 500_000,
    "huge": b"",  # made sparse below: 1 GiB
}


@pytest.mark.parametrize("name", list(DAMAGED_STATES))
def test_damaged_tracker_state_files(sink: LokiSink, tmp_path: Path, name: str) -> None:
    """Start-up goes on with an empty tracker; the stream is served and delivered."""
    store = tmp_path / "store.db"
    state = Path(f"{store}.migrations.json")
    if name == "huge":
        with state.open("wb") as f:
            f.truncate(1 << 30)  # a sparse GiB: refused unread, by its size
    else:
        state.write_bytes(DAMAGED_STATES[name])
    svc = serve(sink, store)
    assert svc.tracker is not None and len(svc.tracker) == 0
    acknowledged = send(svc, 30 * SCALE, "state")
    settle(sink, svc, store, acknowledged, duplicates=0)


def _readonly_mount(path: Path, *, now: bool = True) -> Any:
    """Mount a small tmpfs on ``path`` (read-only at once with ``now``); a function remounting it
    ``ro``/``rw``. Skips where the test cannot mount (not root): directory modes do not stop root."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")

    def remount(mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True, check=False)

    if now:
        remount("ro")
    import atexit  # noqa: PLC0415

    atexit.register(lambda: subprocess.run(["umount", "-l", str(path)], check=False))
    return remount
