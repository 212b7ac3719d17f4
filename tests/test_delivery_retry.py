"""Queue mode: a throttling hint is a pause, the dead letters never evict, a 413'd part is kept
(issue 18 items 3 and 8). Real sockets: otelkv serves on port 0, a Loki double answers.

Each test counts records by uid: every acknowledged record must reach the target, after the
dead letters are replayed (``otelkv dead-letter replay``, once ``serve`` has stopped).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.commands import main
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.reliability import Collector, numbered_events, requests_of, stored, uids, wait_until
from tests.test_reliability import queue_config


def replay_config(tmp_path: Path, sink: LokiSink) -> Path:
    path = tmp_path / "replay.yaml"
    path.write_text(
        f"forward: {{endpoint: '{sink.url}', tenant: kubevirt}}\ndelivery: {{store_path: '{tmp_path / 'store.db'}'}}\n"
    )
    return path


def test_a_huge_retry_after_pauses_the_queue_and_drops_nothing(sink: LokiSink, tmp_path: Path) -> None:
    """Issue 18 item 3: ``429 Retry-After: 99999`` (beyond ``retry.max_elapsed``) dead-lettered
    every batch after one attempt on main; now each waits ``retry.max_interval`` and is asked again."""
    throttled = Scripted(429, {"Retry-After": "99999"}, b"Ingestion rate limit exceeded")
    sink.script.extend([throttled] * 12)
    svc = Service(queue_config(sink, tmp_path))  # max_interval 0.2 s, max_elapsed 60 s
    svc.start()
    try:
        client = Collector(f"127.0.0.1:{svc.grpc_port}")
        client.send_all(requests_of(numbered_events(50, "thr"), 10))
        assert wait_until(lambda: set(stored(sink)) == set(client.acknowledged), 30)
        assert svc.store is not None and svc.store.dead_letters() == []
        counts = stored(sink)
        assert len(counts) == 50 and max(counts.values()) == 1
    finally:
        svc.stop(5)


def test_full_dead_letters_hold_the_batch_in_the_queue_instead_of_evicting(sink: LokiSink, tmp_path: Path) -> None:
    """Issue 18 item 3: with ``dead_letter_max_entries`` reached the oldest dead letters were
    evicted (14,920 of 15,420 acknowledged records lost). Now the batch stays queued, counted,
    and is delivered when the target is back; the dead letters are replayed: nothing lost."""
    port = sink.port
    sink.stop()
    config = queue_config(sink, tmp_path, **{"delivery.retry.max_elapsed": 0.3, "delivery.dead_letter_max_entries": 2})
    svc = Service(config)
    svc.start()
    store = svc.store
    assert store is not None
    back: LokiSink | None = None
    try:
        client = Collector(f"127.0.0.1:{svc.grpc_port}")
        client.send_all(requests_of(numbered_events(30, "full"), 5))
        assert wait_until(lambda: store.dead_letters_full > 0)
        assert len(store.dead_letters()) == 2 and store.stats()[0] == 20  # held, not evicted
        back = LokiSink(port=port).start()
        assert wait_until(lambda: store.stats()[0] == 0)
    finally:
        svc.stop(5)
    assert back is not None
    try:
        assert main(["dead-letter", "replay", "--config", str(replay_config(tmp_path, back))]) == 0
        counts = stored(back)
        assert set(counts) == set(client.acknowledged) and len(counts) == 30
        assert max(counts.values()) == 1
    finally:
        back.stop()


def _with_a_large_record(request: ExportLogsServiceRequest, index: int, size: int) -> ExportLogsServiceRequest:
    """``request`` with the body of its ``index``-th resource's record made ``size`` incompressible bytes."""
    big = ExportLogsServiceRequest()
    big.CopyFrom(request)
    record = big.resource_logs[index].scope_logs[0].log_records[0]
    record.body.string_value = base64.b64encode(os.urandom(size))[:size].decode()
    return big


def _split_413(sink: LokiSink, tmp_path: Path, **overrides: Any) -> None:
    sink.max_body_bytes = 24 * 1024  # the gateway's limit, made small
    request = _with_a_large_record(requests_of(numbered_events(6, "big"), 6)[0], 2, 64 * 1024)
    config = make_config(sink.url, **{"delivery.store_path": str(tmp_path / "store.db"), **overrides})
    svc = Service(config)
    svc.start()
    try:
        client = Collector(f"127.0.0.1:{svc.grpc_port}")
        client.send(request)
        store = svc.store
        assert store is not None
        assert wait_until(lambda: len(store.dead_letters()) == 1)
        [letter] = store.dead_letters()
        assert letter.records == 1 and "413" in letter.error
        too_large = uids(request)[2]
        assert wait_until(lambda: set(stored(sink)) == set(uids(request)) - {too_large})
    finally:
        svc.stop(5)
    sink.max_body_bytes = 4 * 1024 * 1024  # the limit raised: the kept record can be replayed
    assert main(["dead-letter", "replay", "--config", str(replay_config(tmp_path, sink))]) == 0
    counts = stored(sink)
    assert set(counts) == set(uids(request)) and max(counts.values()) == 1


def test_a_record_answered_413_after_a_split_is_kept_as_a_dead_letter_queue(sink: LokiSink, tmp_path: Path) -> None:
    """Issue 18 item 8: the resource too large alone was counted rejected and dropped on main."""
    _split_413(sink, tmp_path, **{"delivery.mode": "queue", "delivery.retry.initial_interval": 0.02})


def test_a_record_answered_413_after_a_split_is_kept_as_a_dead_letter_sync(sink: LokiSink, tmp_path: Path) -> None:
    """Issue 18 item 8, sync mode with a store: the same part kept, the rest answered as stored."""
    _split_413(sink, tmp_path)


class _FailsOn:
    """A forwarder that fails in itself (a bug, not an answer) on requests holding ``marker``,
    and hands the others to ``inner``."""

    def __init__(self, inner: Any, marker: str) -> None:
        self.inner, self.marker, self.failures = inner, marker, 0
        self.target = inner.target

    def send(self, request: Any, *, timeout: float) -> Any:
        from otelkv.forward import message  # noqa: PLC0415

        if self.marker in str(message(request)):
            self.failures += 1
            raise RuntimeError("a bug in a forwarder")
        return self.inner.send(request, timeout=timeout)

    def close(self) -> None:
        self.inner.close()


def test_a_batch_failing_in_otelkv_itself_becomes_a_dead_letter_and_the_queue_moves_on(
    sink: LokiSink, tmp_path: Path
) -> None:
    """Found by probing: a batch that failed unexpectedly (a DecodeError of a deep record in the
    413 split) was retried until retry.max_elapsed (an hour by default), holding every batch
    acknowledged after it. Now it becomes a dead letter after UNEXPECTED_ATTEMPTS; nothing lost."""
    from otelkv.delivery.sender import UNEXPECTED_ATTEMPTS  # noqa: PLC0415
    from otelkv.forward.targets import make_forwarder  # noqa: PLC0415

    config = queue_config(sink, tmp_path, **{"delivery.retry.max_elapsed": 3600})
    forwarder = _FailsOn(make_forwarder(config.forward, max_message_bytes=config.max_message_bytes), "bad-0")
    svc = Service(config, forwarder=forwarder)
    svc.start()
    try:
        client = Collector(f"127.0.0.1:{svc.grpc_port}")
        client.send_all(requests_of(numbered_events(10, "bad"), 10))  # one batch: bad-0 … bad-9
        client.send_all(requests_of(numbered_events(10, "after"), 10))
        assert wait_until(lambda: len(stored(sink)) == 10, 30)
        assert svc.store is not None and len(svc.store.dead_letters()) == 1
        assert forwarder.failures == UNEXPECTED_ATTEMPTS
    finally:
        svc.stop(5)
    assert all(uid.startswith("after") for uid in stored(sink))
