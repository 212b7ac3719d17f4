"""Issue 23 §3: the duplicate window survives an otelkv restart. It is saved beside the store with
the tracker's migrations and read back before serving, so a batch the collector sends again after
otelkv restarted is not forwarded twice, nor its migration summarised twice. A damaged or too
large saved window is a warning and an empty window, never a refusal to start."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Hashable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from otelkv.config import ConfigError, load
from otelkv.delivery import window_state
from otelkv.delivery.files import write_private
from otelkv.delivery.tracker_state import CONCLUDED_GAP, PersistentTracker, state_path
from otelkv.delivery.window_state import SavedWindow, dump_keys, load_keys, window_path
from otelkv.pipeline.dedup import DeliveredKeys
from otelkv.server import Service, delivered_keys
from tests.conftest import make_config
from tests.loki_sink import LokiSink
from tests.reliability import Collector, requests_of, stored, wait_until
from tests.scenarios import Truth, migration_events
from tests.serve_child import ServeChild
from tests.test_kubevirt_tracker import migrated, migrating

SUMMARY = "kubevirt.migration.summary"


# -- the file: keys of any shape, bounded, damage ----------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=70),
    st.binary(max_size=70),
)
keys = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.tuples(inner, inner, inner), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(keys, max_size=30))
def test_any_key_of_the_documented_types_reads_back_equal(tmp_path_factory: Any, saved: list[Hashable]) -> None:
    path = tmp_path_factory.mktemp("w") / "store.db.delivered.json"
    data, count, problems = dump_keys(saved, 1 << 20)
    path.write_bytes(data)
    assert (count, problems) == (len(saved), [])
    back = load_keys(path, 1 << 20)
    assert back == saved
    assert [type(k) for k in back] == [type(k) for k in saved]  # bytes stay bytes, tuples tuples


def test_nan_and_infinity_read_back() -> None:
    data, _, _ = dump_keys([("u", math.inf), ("v", -math.inf), ("w", math.nan)], 1000)
    back = window_state.decode_key(json.loads(data)["keys"][2])
    assert isinstance(back, tuple) and math.isnan(back[1])
    assert json.loads(data)["keys"][:2] == [["u", {"f": "inf"}], ["v", {"f": "-inf"}]]


def test_a_key_of_another_type_is_skipped_with_one_warning(tmp_path: Path, caplog: Any) -> None:
    window = DeliveredKeys(10)
    for key in [("a", 1), ("b", frozenset({1})), ("c", 3), object()]:
        window.add(key)
    saver = SavedWindow(tmp_path / "w.json", window, max_bytes=1 << 20)
    window.add(("d", 4))
    with caplog.at_level(logging.WARNING, logger="otelkv.delivery.window_state"):
        assert saver.save()
        window.add(("e", 5))
        assert saver.save()  # the same kind of key again: not logged again
    assert load_keys(tmp_path / "w.json", 1 << 20) == [("a", 1), ("c", 3), ("d", 4), ("e", 5)]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert any("1 keys skipped: a key holding a frozenset (not savable)" in w for w in warnings)
    assert any("a key holding a object" in w for w in warnings)


def test_a_window_past_the_bound_keeps_the_newest_keys(tmp_path: Path, caplog: Any) -> None:
    window = DeliveredKeys(1000)
    for i in range(1000):
        window.add((f"uid-{i:04d}", i))
    saver = SavedWindow(tmp_path / "w.json", window, max_bytes=4096)
    with caplog.at_level(logging.WARNING):
        assert saver.save()
    assert (tmp_path / "w.json").stat().st_size <= 4096
    back = load_keys(tmp_path / "w.json", 4096)
    assert 100 < len(back) < 1000
    assert back == window.snapshot()[-len(back) :]  # the newest, in order
    assert "oldest keys left out: the window passes 4096 bytes" in caplog.text


def test_the_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    window = DeliveredKeys(10)
    window.add(("a", 1))
    saver = SavedWindow(tmp_path / "w.json", window, max_bytes=1 << 20)
    old = os.umask(0)
    try:
        assert saver.save()
    finally:
        os.umask(old)
    assert (tmp_path / "w.json").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json"]  # no temporary file left


def test_nothing_is_written_while_nothing_changed(tmp_path: Path) -> None:
    window = DeliveredKeys(10)
    window.restore([("a", 1)])
    saver = SavedWindow(tmp_path / "w.json", window, max_bytes=1 << 20)
    assert not saver.dirty  # what was just read back needs no saving
    window.add(("b", 2))
    assert saver.dirty
    assert saver.save()
    assert not saver.dirty


GOOD = b'{"version":1,"keys":[["a",1]]}'
DAMAGED = {
    "truncated": GOOD[:15],
    "garbage": os.urandom(4096),
    "empty": b"",
    "nul bytes": b"\x00" * 100,
    "not utf-8": b'{"version":1,"keys":["\xff\xfe"]}',
    "a list": b"[1, 2, 3]",
    "another version": b'{"version":2,"keys":[]}',
    "keys is a dict": b'{"version":1,"keys":{"a":1}}',
    "a key that is a dict": b'{"version":1,"keys":[{"x":1}]}',
    "bytes that are not base64": b'{"version":1,"keys":[{"b":"***"}]}',
    "a float tag that is not one": b'{"version":1,"keys":[{"f":"1e999x"}]}',
    "deep nesting": b'{"version":1,"keys":[' + b"[" * 200_000,
    "a huge number": b'{"version":1,"keys":[1' + b"0" * 5000 + b"]}",
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_saved_window_starts_otelkv_with_an_empty_one(
    tmp_path: Path, sink: LokiSink, content: bytes, caplog: Any
) -> None:
    store = tmp_path / "store.db"
    window_path(str(store)).write_bytes(content)
    with caplog.at_level(logging.WARNING):
        service = Service(make_config(sink.url, **{"delivery.store_path": str(store)}))
    try:
        assert len(service.pipeline._delivered) == 0
    finally:
        service.stop(0)
    lines = [r.getMessage() for r in caplog.records if r.name == "otelkv.delivery.window_state"]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert lines[0].startswith(f"ignoring the saved duplicate window in {window_path(str(store))}")


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_a_saved_window_that_is_no_file_starts_an_empty_one(tmp_path: Path, kind: str, caplog: Any) -> None:
    path = tmp_path / "store.db.delivered.json"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer forever
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero")  # reading it would never end
    with caplog.at_level(logging.WARNING):
        assert load_keys(path, 1 << 20) == []
    assert "ignoring the saved duplicate window" in caplog.text


def test_a_saved_window_past_the_bound_is_not_read(tmp_path: Path, sink: LokiSink, caplog: Any) -> None:
    store = tmp_path / "store.db"
    data, _, _ = dump_keys([(f"uid-{i}", i) for i in range(200)], 1 << 20)
    window_path(str(store)).write_bytes(data)
    overrides = {"delivery.store_path": str(store), "delivery.saved_window_max_bytes": len(data) - 1}
    with caplog.at_level(logging.WARNING):
        service = Service(make_config(sink.url, **overrides))
    service.stop(0)
    assert len(service.pipeline._delivered) == 0
    assert f"{len(data)} bytes, more than delivery.saved_window_max_bytes ({len(data) - 1})" in caplog.text
    with caplog.at_level(logging.INFO):  # within the bound it is read
        overrides["delivery.saved_window_max_bytes"] = len(data)
        service = Service(make_config(sink.url, **overrides))
    service.stop(0)
    assert len(service.pipeline._delivered) == 200


def test_a_smaller_window_than_the_one_saved_keeps_the_newest(tmp_path: Path, sink: LokiSink) -> None:
    store = str(tmp_path / "store.db")
    data, _, _ = dump_keys([(f"uid-{i}", i) for i in range(100)], 1 << 20)
    window_path(store).write_bytes(data)
    config = make_config(sink.url, **{"delivery.store_path": store, "enrich.dedup_window": 10})
    window = delivered_keys(config, PersistentTracker(state_path(store)))
    assert window.snapshot() == [(f"uid-{i}", i) for i in range(90, 100)]


def test_without_a_store_nothing_is_saved(tmp_path: Path, sink: LokiSink) -> None:
    service = Service(make_config(sink.url))
    service.start()
    Collector(f"127.0.0.1:{service.grpc_port}").send(requests_of(events(), 7)[0])
    service.stop()
    assert list(tmp_path.iterdir()) == []


def test_the_bound_is_validated_and_takes_sizes() -> None:
    for bad in (0, -1):
        with pytest.raises(ConfigError, match=r"^delivery\.saved_window_max_bytes: must be greater than 0"):
            load(environ={}, overrides={"delivery.saved_window_max_bytes": bad})
    assert load(environ={}, overrides={"delivery.saved_window_max_bytes": "2MiB"}).delivery.saved_window_max_bytes == (
        2 * 1024 * 1024
    )
    assert load(environ={}).delivery.saved_window_max_bytes == 8 * 1024 * 1024


# -- saved with the migrations ------------------------------------------------------------------


def test_the_window_is_written_after_the_migrations_and_not_without_them(tmp_path: Path, monkeypatch: Any) -> None:
    store = str(tmp_path / "store.db")
    tracker = PersistentTracker(state_path(store))
    window = DeliveredKeys(10)
    tracker.keep_window(SavedWindow(window_path(store), window, max_bytes=1 << 20))
    window.add(("a", 1))
    written: list[str] = []
    real = write_private

    def recording(path: Path, data: bytes, *, fsync: bool) -> None:
        written.append(path.name)
        real(path, data, fsync=fsync)

    monkeypatch.setattr(window_state, "write_private", recording)
    monkeypatch.setattr("otelkv.delivery.tracker_state.write_private", recording)
    assert tracker.save()
    assert written == ["store.db.migrations.json", "store.db.delivered.json"]

    def failing(path: Path, data: bytes, *, fsync: bool) -> None:
        raise OSError(28, "No space left on device")

    window.add(("b", 2))
    monkeypatch.setattr("otelkv.delivery.tracker_state.write_private", failing)
    assert not tracker.save()
    assert load_keys(window_path(store), 1 << 20) == [("a", 1)]  # not written past the migrations
    assert tracker.dirty
    monkeypatch.setattr("otelkv.delivery.tracker_state.write_private", recording)
    assert tracker.save(changed_only=True)
    assert load_keys(window_path(store), 1 << 20) == [("a", 1), ("b", 2)]


def test_a_window_that_changed_alone_is_saved_by_the_saver(tmp_path: Path) -> None:
    store = str(tmp_path / "store.db")
    tracker = PersistentTracker(state_path(store), interval=0.05)
    window = DeliveredKeys(10)
    tracker.keep_window(SavedWindow(window_path(store), window, max_bytes=1 << 20))
    tracker.start_saver()
    try:
        window.add(("a", 1))  # a record no migration is about (passed through): the tracker is clean
        assert wait_until(lambda: load_keys(window_path(store), 1 << 20) == [("a", 1)], 30)
    finally:
        tracker.stop_saver()
    assert not state_path(store).exists()  # the migrations did not change: not written


# -- real processes: a retry after a restart -----------------------------------------------------

TRUTH = Truth(
    namespace="prod",
    vm="db-1",
    migration="kubevirt-evacuation-abcde",
    migration_uid=str(uuid.uuid4()),
    source="node01",
    target="node02",
    target_pod="virt-launcher-db-1-xyz",
    succeeded=True,
    failure_reason=None,
)


def events() -> list[dict[str, Any]]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    return migration_events(TRUTH, start=start, handler_v16=True, vmi_uid=str(uuid.uuid4()))


def write_config(tmp_path: Path, sink: LokiSink, mode: str) -> Path:
    path = tmp_path / "otelkv.yaml"
    values = {
        "grpc_listen": "127.0.0.1:0",
        "http_listen": "127.0.0.1:0",
        "shutdown_grace_seconds": 5,
        "forward": {"endpoint": sink.url, "tenant": "kubevirt", "timeout": 2},
        "delivery": {"mode": mode, "store_path": str(tmp_path / "store.db")},
    }
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture
def children() -> Iterator[list[ServeChild]]:
    running: list[ServeChild] = []
    yield running
    for child in running:
        child.stop()


def summaries(sink: LokiSink) -> list[str]:
    return [e.line for e in sink.entries if e.metadata.get("event_name") == SUMMARY]


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL after a save"])
@pytest.mark.parametrize("mode", ["sync", "queue"])
def test_a_batch_sent_again_after_a_restart_is_not_forwarded_twice(
    tmp_path: Path, children: list[ServeChild], stop: str, mode: str
) -> None:
    """The collector's answer was lost (a timeout, the restart itself): it sends the very same
    batches again (FACTS §2) to the otelkv that started on the same store."""
    sink = LokiSink().start()
    config = write_config(tmp_path, sink, mode)
    first = ServeChild(config)
    children.append(first)
    batches = requests_of(events(), 4)  # the second batch ends the migration: it carries the summary
    Collector(first.grpc).send_all(batches)
    assert wait_until(lambda: len(sink.entries) == 8, 30)  # 7 events and 1 summary
    if stop == "SIGTERM":
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(30) == 0
    else:  # saved within a second of the change, then killed: nothing said goodbye
        window = window_path(str(tmp_path / "store.db"))
        assert wait_until(lambda: len(load_keys(window, 1 << 20)) == 8, 30)  # 7 keys and the summary's
        first.process.kill()
        first.process.wait()
    second = ServeChild(config)
    children.append(second)
    Collector(second.grpc).send_all(batches)  # the collector's retry, after the restart
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(30) == 0
    counts = stored(sink)
    assert len(counts) == 8 and set(Counter(counts.values())) == {1}, counts  # 7 uids + "" of the summary
    assert len(summaries(sink)) == 1 and "db-1 migrated node01 → node02" in summaries(sink)[0]
    sink.stop()


def test_a_concluded_migration_is_saved_within_the_short_gap_not_the_interval(tmp_path: Path) -> None:
    """A SIGKILL after a summary was delivered must not leave a saved tracker without the
    conclusion: the migration's later records would conclude it again after the restart (a
    second, different summary: measured in tests/test_failure_drills.py before this)."""
    tracker = PersistentTracker(tmp_path / "m.json", interval=60.0)
    tracker.start_saver()
    try:
        tracker.track(migrating("node01", 1), key=("e", 1))
        assert tracker._until_due() > 30  # an ordinary change waits for the interval
        assert tracker.track(migrated("node01", "node02", 5), key=("e", 2)).concluded
        assert tracker._until_due() <= CONCLUDED_GAP
        assert wait_until((tmp_path / "m.json").exists, 30)  # long before the 60 s interval
        saved = json.loads((tmp_path / "m.json").read_text())["migrations"]
        assert [m["concluded_by"] for m in saved] == [["e", 2]]
    finally:
        tracker.stop_saver()


def test_a_saver_that_cannot_write_does_not_spin(tmp_path: Path, monkeypatch: Any) -> None:
    calls: list[Path] = []

    def failing(path: Path, data: bytes, *, fsync: bool) -> None:
        calls.append(path)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("otelkv.delivery.tracker_state.write_private", failing)
    tracker = PersistentTracker(tmp_path / "m.json", interval=0.2)
    tracker.start_saver()
    try:
        tracker.track(migrating("node01", 1), key=("e", 1))
        tracker.track(migrated("node01", "node02", 5), key=("e", 2))
        assert wait_until(lambda: len(calls) >= 2, 30)
        count = len(calls)
        stopped = threading.Event()
        stopped.wait(0.5)  # a spinning saver would try thousands of times meanwhile
        assert len(calls) - count <= 5, len(calls) - count
    finally:
        tracker.stop_saver()


def test_a_save_for_a_conclusion_leaves_the_window_for_the_whole_save(tmp_path: Path) -> None:
    """Saving the migrations alone is what keeps that save quick with a full window (50,000 keys
    add ~0.1 s); the window on disk stays older than the migrations, never newer."""
    store = str(tmp_path / "store.db")
    tracker = PersistentTracker(state_path(store), interval=60.0)
    window = DeliveredKeys(10)
    tracker.keep_window(SavedWindow(window_path(store), window, max_bytes=1 << 20))
    tracker.start_saver()
    try:
        tracker.track(migrating("node01", 1), key=("e", 1))
        tracker.track(migrated("node01", "node02", 5), key=("e", 2))
        window.add(("e", 1))
        assert wait_until(state_path(store).exists, 30)
        assert not window_path(store).exists()
    finally:
        tracker.stop_saver()  # the whole save: the window too
    assert load_keys(window_path(store), 1 << 20) == [("e", 1)]
