"""A damaged or lost store (issue 8, item 2): set aside and replaced, never a crash loop, never a
black hole; what can be read is delivered; a store emptied behind otelkv's back is noticed."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
import urllib3

from otelkv.delivery import salvage
from otelkv.delivery.store import Store
from otelkv.errors import StoreUnavailable
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink
from tests.reliability import numbered_events, requests_of, stored, uids, wait_until

HTTP = urllib3.PoolManager(retries=False)
PAGE = 4096  # SQLite's default page size


def filled_store(path: Path, batches: int = 30) -> list[str]:
    """A closed store holding ``batches`` batches of 10 numbered records; their uids."""
    store = Store(path, max_bytes=2**30, max_records=10**6, max_dead_letters=10)
    queued = []
    for request in requests_of(numbered_events(10 * batches, "dmg"), 10):
        store.put(request.SerializeToString(), 10)
        queued.extend(uids(request))
    store.close()
    return queued


def garbage_mid_file(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2 // PAGE * PAGE)
        f.write(os.urandom(8192))


def truncated(path: Path) -> None:
    path.write_bytes(b"")


def damaged_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(os.urandom(100))


def damaged_page_2(path: Path) -> None:  # the root page of the queue table
    with path.open("r+b") as f:
        f.seek(PAGE)
        f.write(os.urandom(PAGE))


def serve(sink: LokiSink, store: Path) -> Service:
    config = make_config(
        sink.url,
        **{"delivery.mode": "queue", "delivery.store_path": str(store), "delivery.retry.initial_interval": 0.02},
    )
    svc = Service(config)  # no exit 2: it comes up
    svc.start()
    return svc


def metric(svc: Service, name: str) -> float:
    text = HTTP.request("GET", f"http://127.0.0.1:{svc.http_port}/metrics").data.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.parametrize("damage", [garbage_mid_file, damaged_header, damaged_page_2], ids=lambda d: d.__name__)
def test_a_damaged_store_is_set_aside_what_can_be_read_is_delivered(
    tmp_path: Path, sink: LokiSink, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    path = tmp_path / "store.db"
    queued = filled_store(path)
    assert callable(damage)
    damage(path)
    caplog.set_level(logging.ERROR, logger="otelkv.delivery.store")
    svc = serve(sink, path)
    try:
        assert svc.store is not None
        [aside] = svc.store.set_aside
        assert Path(aside).exists() and Path(aside).name.startswith("store.db.damaged-")  # kept for inspection
        assert any(aside in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)
        assert metric(svc, "otelkv_queue_damaged_total") == 1
        assert wait_until(lambda: svc.store is not None and svc.store.stats()[0] == 0)
        salvaged = set(stored(sink))
        assert salvaged <= set(queued)
        if damage is garbage_mid_file:  # the pages before the garbage are intact: delivered
            assert queued[:10] == sorted(salvaged)[:10] and len(salvaged) < len(queued)
        fresh = requests_of(numbered_events(10, "after"), 10)[0]  # the fresh store takes new data
        assert svc.pipeline.health.ready()[0]
        svc.pipeline.export(fresh)
        assert wait_until(lambda: set(uids(fresh)) <= set(stored(sink)))
        assert max(stored(sink).values()) == 1
    finally:
        svc.stop(5)


def test_a_store_emptied_behind_otelkvs_back_is_noticed(
    tmp_path: Path, sink: LokiSink, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store.db"
    filled_store(path, batches=3)
    marker = salvage.Marker.read(str(path))
    assert marker is not None and marker.records == 30 and marker.batches == 3
    truncated(path)
    caplog.set_level(logging.WARNING, logger="otelkv.delivery.store")
    svc = serve(sink, path)
    try:
        [lost] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "new or empty" in lost.getMessage() and "30 queued records" in lost.getMessage()
        assert metric(svc, "otelkv_queue_damaged_total") == 1
    finally:
        svc.stop(5)
    again = salvage.Marker.read(str(path))
    assert again is not None and again.generation != marker.generation and again.records == 0


def test_a_new_store_after_an_empty_one_is_only_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "store.db"
    Store(path, max_bytes=100, max_records=10, max_dead_letters=1).close()
    path.unlink()
    caplog.set_level(logging.WARNING, logger="otelkv.delivery.store")
    store = Store(path, max_bytes=100, max_records=10, max_dead_letters=1)
    assert store.damaged == 0 and [r.levelno for r in caplog.records] == [logging.WARNING]
    store.close()


def test_damage_met_while_running_replaces_the_store_and_keeps_order(tmp_path: Path) -> None:
    """Damage the start-up check did not see (it came later): the first read that meets it sets the
    store aside; the batches still readable come out, in order, from the fresh one."""
    path = tmp_path / "store.db"
    queued = filled_store(path)
    store = Store(path, max_bytes=2**30, max_records=10**6, max_dead_letters=10)
    garbage_mid_file(path)
    with sqlite3.connect(path) as other:  # another write: SQLite drops the pages it had cached
        other.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('touched', '1')")
    assert store.damaged == 0
    seen: list[int] = []
    for _ in range(100):  # bounded: 30 batches
        entry = store.oldest()
        if entry is None:
            break
        seen.append(entry.id)
        store.remove(entry.id)
    assert store.damaged == 1 and store.set_aside
    assert seen == sorted(seen) and 0 < len(seen) < len(queued) // 10
    after = store.put(b"new batch", 1)
    entry = store.oldest()
    assert entry is not None and entry.id == after and entry.payload == b"new batch"
    store.close()


def test_no_room_for_the_copy_leaves_the_damaged_store_in_place_and_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    filled_store(path)
    store = Store(path, max_bytes=2**30, max_records=10**6, max_dead_letters=10)
    garbage_mid_file(path)
    with sqlite3.connect(path) as other:
        other.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('touched', '1')")
    real, calls = salvage.salvage, []

    def full_once(damaged: str, into: sqlite3.Connection) -> salvage.Salvaged:
        calls.append(damaged)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(damaged, into)

    monkeypatch.setattr(salvage, "salvage", full_once)

    def drain() -> None:
        for _ in range(100):  # bounded: 30 batches
            entry = store.oldest()
            assert entry is not None
            store.remove(entry.id)

    with pytest.raises((sqlite3.Error, StoreUnavailable)):  # the sender tries again after a pause
        drain()
    assert store.damaged == 0 and path.exists() and not list(tmp_path.glob("*.salvage*"))
    entry = store.oldest()  # the next attempt: copied, set aside, replaced
    assert store.damaged == 1 and len(calls) == 2 and entry is not None
    store.close()


def test_damaged_at_start_without_room_for_the_copy_comes_up_refusing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    filled_store(path)
    garbage_mid_file(path)
    real, calls = salvage.salvage, []

    def full_once(damaged: str, into: sqlite3.Connection) -> salvage.Salvaged:
        calls.append(damaged)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(damaged, into)

    monkeypatch.setattr(salvage, "salvage", full_once)
    store = Store(path, max_bytes=2**30, max_records=10**6, max_dead_letters=10)  # no exit 2
    assert store.refusing() and "no room" in (store.refusing() or "") and store.damaged == 0
    entry = store.oldest()  # the sender's next read tries again, and there is room now
    assert entry is not None and store.damaged == 1
    store.put(b"new", 1)
    assert store.refusing() is None
    store.close()
