"""Fault injection: every record in is counted out. Nothing acknowledged is lost; nothing is
stored twice, except where docs/reliability.md says at-least-once (then duplicates are bounded).

``OTELKV_SOAK=1`` (``make soak``) multiplies the volumes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from otelkv.otlp import native
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.reliability import Collector, numbered_events, requests_of, stored, wait_until

SCALE = 10 if os.environ.get("OTELKV_SOAK") else 1
FAST_RETRY = {
    "delivery.retry.initial_interval": 0.02,
    "delivery.retry.max_interval": 0.2,
    "delivery.retry.max_elapsed": 60.0,
}


def queue_config(sink: LokiSink, tmp_path: Path, **more: Any) -> Any:
    return make_config(
        sink.url, **{"delivery.mode": "queue", "delivery.store_path": str(tmp_path / "store.db"), **FAST_RETRY, **more}
    )


@pytest.fixture
def queued(sink: LokiSink, tmp_path: Path) -> Iterator[Service]:
    running = Service(queue_config(sink, tmp_path))
    running.start()
    yield running
    running.stop(5)


def exactly_once(sink: LokiSink, acknowledged: list[str]) -> None:
    assert wait_until(lambda: set(stored(sink)) >= set(acknowledged)), "acknowledged records are missing"
    counts = stored(sink)
    assert set(counts) == set(acknowledged)
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}


def test_queue_target_down_for_a_while_then_back(core: native.Choice, sink: LokiSink, queued: Service) -> None:
    events = numbered_events(100 * SCALE)
    port = sink.port
    sink.stop()
    client = Collector(f"127.0.0.1:{queued.grpc_port}")
    client.send_all(requests_of(events, 20))  # acknowledged: they are on disk
    assert len(client.acknowledged) == len(events) and not client.refusals
    back = LokiSink(port=port).start()
    try:
        exactly_once(back, client.acknowledged)
        assert wait_until(lambda: queued.store is not None and queued.store.stats()[0] == 0)
        # One sender, oldest batch first: the stream arrives in the order it was acknowledged.
        assert [e.metadata["k8s_event_uid"] for e in back.entries] == client.acknowledged
    finally:
        back.stop()


def test_sync_target_down_the_collectors_retry_delivers(sink: LokiSink, service: Service) -> None:
    events = numbered_events(60)
    port = sink.port
    sink.stop()
    revived: list[LokiSink] = []
    timer = threading.Timer(0.5, lambda: revived.append(LokiSink(port=port).start()))
    timer.start()
    client = Collector(f"127.0.0.1:{service.grpc_port}")
    client.send_all(requests_of(events, 20))
    timer.join()
    try:
        assert client.refusals["UNAVAILABLE"] > 0 and all(d >= 1.0 for d in client.delays)
        exactly_once(revived[0], client.acknowledged)
    finally:
        revived[0].stop()


@pytest.mark.parametrize("mode", ["sync", "queue"])
def test_flapping_target_with_every_kind_of_trouble(sink: LokiSink, tmp_path: Path, mode: str) -> None:
    trouble = [
        Scripted(503),
        Scripted(429, {"Retry-After": "1"}),
        Scripted(500),
        Scripted(502, {}, b"<html>bad gw"),
        Scripted(0),
        Scripted(504),
        Scripted(200, {"Content-Type": "application/x-protobuf"}, b"\xff\xfe\x00"),
    ]
    sink.script.extend(trouble * 3)
    config = queue_config(sink, tmp_path) if mode == "queue" else make_config(sink.url)
    svc = Service(config)
    svc.start()
    try:
        client = Collector(f"127.0.0.1:{svc.grpc_port}")
        client.send_all(requests_of(numbered_events(90 * SCALE), 10))
        exactly_once(sink, client.acknowledged)
        assert not sink.script  # every trouble was met
    finally:
        svc.stop(5)


def test_loki_400_stores_the_valid_entries_once_and_is_never_resent(sink: LokiSink, queued: Service) -> None:
    events = numbered_events(40)
    request = requests_of(events, 40)[0]
    times = sorted({r.scope_logs[0].log_records[0].time_unix_nano for r in request.resource_logs})
    sink.reject_older_than = times[len(times) // 2]
    too_old = sum(r.scope_logs[0].log_records[0].time_unix_nano < sink.reject_older_than for r in request.resource_logs)
    client = Collector(f"127.0.0.1:{queued.grpc_port}")
    client.send(request)
    assert wait_until(lambda: queued.store is not None and queued.store.stats()[0] == 0)
    counts = stored(sink)
    assert len(counts) == len(events) - too_old and max(counts.values()) == 1
    assert len(sink.requests) == 1


def test_slow_target_past_the_timeout_is_at_least_once_and_bounded(sink: LokiSink, tmp_path: Path) -> None:
    sink.script.append(Scripted(None, delay=1.6))  # slower than the 1 s forward timeout, but stores
    svc = Service(queue_config(sink, tmp_path))
    svc.start()
    try:
        client = Collector(f"127.0.0.1:{svc.grpc_port}")
        batch = requests_of(numbered_events(10), 10)
        client.send_all(batch)
        assert wait_until(lambda: svc.store is not None and svc.store.stats()[0] == 0)
        assert wait_until(lambda: set(stored(sink)) == set(client.acknowledged))
        counts = stored(sink)
        assert max(counts.values()) <= 2 and sum(counts.values()) <= 2 * len(counts)  # one timed-out attempt
    finally:
        svc.stop(5)


def test_a_batch_given_up_on_is_a_dead_letter_not_a_loss(core: native.Choice, sink: LokiSink, tmp_path: Path) -> None:
    sink.stop()
    svc = Service(queue_config(sink, tmp_path, **{"delivery.retry.max_elapsed": 0.3}))
    svc.start()
    try:
        client = Collector(f"127.0.0.1:{svc.grpc_port}")
        client.send(requests_of(numbered_events(5), 5)[0])
        assert svc.store is not None
        assert wait_until(lambda: len(svc.store.dead_letters()) == 1)  # type: ignore[union-attr]
        [letter] = svc.store.dead_letters()
        assert letter.records == 5 and "gave up after" in letter.error
    finally:
        svc.stop(1)


def test_queue_full_is_backpressure_the_collector_retries(sink: LokiSink, tmp_path: Path) -> None:
    port = sink.port
    sink.stop()
    svc = Service(queue_config(sink, tmp_path, **{"delivery.queue_max_records": 30}))
    svc.start()
    try:
        client = Collector(f"127.0.0.1:{svc.grpc_port}", max_attempts=2000)
        requests = requests_of(numbered_events(60), 10)
        client.send_all(requests[:3])
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub  # noqa: PLC0415

            with pytest.raises(grpc.RpcError) as caught:
                LogsServiceStub(channel).Export(requests[3], timeout=5)
        assert isinstance(caught.value, grpc.Call)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "queue full" in (caught.value.details() or "")
        assert not svc.pipeline.health.ready()[0]
        back = LokiSink(port=port).start()  # the target returns: the queue drains, the rest is taken
        try:
            client.send_all(requests[3:])
            exactly_once(back, client.acknowledged)
        finally:
            back.stop()
    finally:
        svc.stop(5)


def test_inflight_cap_refuses_with_retry_info_under_concurrent_load(sink: LokiSink) -> None:
    sink.delay = 0.2
    svc = Service(make_config(sink.url, max_message_bytes=65536, **{"delivery.max_inflight_bytes": 786432}))
    svc.start()
    try:
        requests = requests_of(numbered_events(8 * 40 * SCALE), 40)  # ~30 kB, ~270 kB decoded: two fit at once
        clients = [Collector(f"127.0.0.1:{svc.grpc_port}") for _ in range(8)]
        threads = [threading.Thread(target=c.send_all, args=(requests[i::8],)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        acknowledged = [uid for c in clients for uid in c.acknowledged]
        assert len(acknowledged) == 8 * 40 * SCALE
        assert sum(c.refusals["UNAVAILABLE"] for c in clients) > 0  # refused, not queued in memory
        assert svc.pipeline.inflight.peak <= 786432
        exactly_once(sink, acknowledged)
    finally:
        svc.stop(5)
