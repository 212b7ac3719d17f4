"""otelkv's own metrics: Prometheus text, and OTLP export to a real gRPC metrics receiver."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import (
    MetricsServiceServicer,
    add_MetricsServiceServicer_to_server,
)

from otelkv.errors import Retryable
from otelkv.server import Service
from otelkv.telemetry.metrics import DURATION_BUCKETS, Telemetry
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.reliability import numbered_events, requests_of, stored, wait_until


class Recorder(MetricsServiceServicer):
    def __init__(self) -> None:
        self.received: list[ExportMetricsServiceRequest] = []

    def Export(
        self, request: ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> ExportMetricsServiceResponse:
        self.received.append(request)
        return ExportMetricsServiceResponse()


def export_over_otlp(record: Callable[[Telemetry], None]) -> list[ExportMetricsServiceRequest]:
    """What a real gRPC metrics receiver gets from a Telemetry that ``record`` used, then shut down."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    recorder = Recorder()
    add_MetricsServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        telemetry = Telemetry(otlp_endpoint=f"127.0.0.1:{port}")
        record(telemetry)
        telemetry.shutdown()  # flushes the periodic reader
        telemetry.shutdown()  # safe twice
    finally:
        server.stop(0)
    return recorder.received


def test_metrics_are_exported_over_otlp_when_configured() -> None:
    def record(telemetry: Telemetry) -> None:
        telemetry.received.add(7)
        telemetry.enriched.add(5)

    received = export_over_otlp(record)
    points = {
        m.name: sum(p.as_int for p in m.sum.data_points)
        for r in received
        for rm in r.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.HasField("sum")
    }
    assert points["otelkv.records.received"] == 7 and points["otelkv.records.enriched"] == 5
    resource = {kv.key: kv.value.string_value for kv in received[0].resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "otelkv"


def test_prometheus_text_names() -> None:
    telemetry = Telemetry()
    telemetry.forwarded.add(3)
    text = telemetry.prometheus_text().decode()
    assert re.search(r"^otelkv_records_forwarded_total 3\.0$", text, re.M)  # no otel_scope_* labels
    telemetry.shutdown()


# -- issue 12, item 2: metrics that fit Prometheus and tell failures apart -------------------------


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of every sample of ``name`` in Prometheus text."""
    found = re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M)
    return {m.group(1) or "": float(m.group(2)) for m in found}


def test_counters_exist_from_the_start_at_zero_without_scope_labels() -> None:
    telemetry = Telemetry()
    text = telemetry.prometheus_text().decode()
    for name in ("dead_lettered", "forwarded", "received"):
        assert sum(samples(text, f"otelkv_records_{name}_total").values()) == 0.0, name
        assert samples(text, f"otelkv_records_{name}_total"), f"no series for {name}"
    assert samples(text, "otelkv_requests_invalid_total") == {
        f'{{error_type="{kind}"}}': 0.0 for kind in ("malformed", "too_large", "unsupported")
    }


def test_no_series_has_an_empty_label_value_after_failures() -> None:
    """Issue 20 item 6: a counter started without its error.type label showed error_type="" beside
    the real series once the first failure came (failed, rejected, requests_invalid)."""
    telemetry = Telemetry()
    telemetry.failed_records(3, Retryable("down", error_type="connection"))
    telemetry.rejected_records(2, "400")
    telemetry.invalid_request("malformed")
    text = telemetry.prometheus_text().decode()
    assert '=""' not in text, [line for line in text.splitlines() if '=""' in line]
    assert "otel_scope_" not in text
    telemetry.shutdown()


def test_forward_duration_has_buckets_for_seconds() -> None:
    telemetry = Telemetry()
    for seconds in (0.003, 0.02, 0.3, 7.0):
        telemetry.latency.record(seconds)
    buckets = samples(telemetry.prometheus_text().decode(), "otelkv_forward_duration_seconds_bucket")
    assert [label.split('"')[1] for label in buckets] == [*(str(b) for b in DURATION_BUCKETS), "+Inf"]
    assert buckets['{le="0.005"}'] == 1 and buckets['{le="0.025"}'] == 2 and buckets['{le="0.5"}'] == 3
    assert buckets['{le="5.0"}'] == 3 and buckets['{le="10.0"}'] == 4
    telemetry.shutdown()


def test_requests_invalid_tells_too_large_from_malformed() -> None:
    telemetry = Telemetry()
    telemetry.invalid_request("too_large")
    telemetry.invalid_request()
    telemetry.invalid_request()
    invalid = samples(telemetry.prometheus_text().decode(), "otelkv_requests_invalid_total")
    assert invalid['{error_type="too_large"}'] == 1 and invalid['{error_type="malformed"}'] == 2
    telemetry.shutdown()


def test_failed_records_tell_a_401_from_a_503_in_sync_mode(sink: LokiSink) -> None:
    sink.script.extend([Scripted(401, {}, b"no org id\n"), Scripted(503), Scripted(503)])
    svc = Service(make_config(sink.url))
    svc.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            stub = LogsServiceStub(channel)
            for request in requests_of(numbered_events(30, "err"), 10):
                with pytest.raises(grpc.RpcError):
                    stub.Export(request, timeout=5)
        failed = samples(svc.telemetry.prometheus_text().decode(), "otelkv_records_failed_total")
    finally:
        svc.stop(5)
    assert failed['{error_type="401"}'] == 10 and failed['{error_type="503"}'] == 20


def test_queue_mode_counts_failed_records_once_not_per_attempt(sink: LokiSink, tmp_path: Path) -> None:
    sink.script.extend([Scripted(503)] * 3)
    svc = Service(
        make_config(
            sink.url,
            **{
                "delivery.mode": "queue",
                "delivery.store_path": str(tmp_path / "q.db"),
                "delivery.retry.initial_interval": 0.02,
            },
        )
    )
    svc.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            LogsServiceStub(channel).Export(requests_of(numbered_events(40, "once"), 40)[0], timeout=5)
        assert wait_until(lambda: len(stored(sink)) == 40)

        def forwarded() -> float:  # counted once the answer is back, a moment after the sink stored
            return sum(samples(svc.telemetry.prometheus_text().decode(), "otelkv_records_forwarded_total").values())

        assert wait_until(lambda: forwarded() == 40)
        text = svc.telemetry.prometheus_text().decode()
    finally:
        svc.stop(5)
    assert samples(text, "otelkv_records_failed_total")['{error_type="503"}'] == 40  # 4 attempts, 40 records
    assert sum(samples(text, "otelkv_records_forwarded_total").values()) == 40


def test_summaries_are_counted_on_their_own(sink: LokiSink) -> None:
    """Issue 20 item 6: 40 received and 44 forwarded did not reconcile without the summaries."""
    from otelkv.commands.event_file import in_time_order, read_event_file  # noqa: PLC0415
    from otelkv.commands.replay import batches  # noqa: PLC0415
    from tests.conftest import EXAMPLE, make_config  # noqa: PLC0415

    svc = Service(make_config(sink.url, **{"enrich.summaries": True}))
    svc.start()
    try:
        events = in_time_order(read_event_file(str(EXAMPLE)))
        for request in batches(events, 100):
            svc.pipeline.export(request)
        text = svc.telemetry.prometheus_text().decode()
    finally:
        svc.stop(2)
    received = samples(text, "otelkv_records_received_total")[""]
    forwarded = samples(text, "otelkv_records_forwarded_total")[""]
    added = samples(text, "otelkv_summaries_total")['{outcome="added"}']
    assert added > 0 and forwarded == received + added == len(sink.entries)


# -- issue 24, item 4: the SDK only where the metrics go -------------------------------------------


def test_without_a_reader_the_instruments_record_nothing() -> None:
    telemetry = Telemetry(prometheus=False)
    assert not telemetry.recording
    telemetry.received.add(3)
    telemetry.latency.record(0.2)
    telemetry.failed_records(1, Retryable("down", error_type="connection"))
    telemetry.observe_refusals(dict, dict)  # callbacks nobody will call
    assert telemetry.prometheus_text() == b""
    telemetry.shutdown()
    telemetry.shutdown()


def test_otlp_alone_pushes_without_a_prometheus_reader() -> None:
    received: list[ExportMetricsServiceRequest] = []

    def record(telemetry: Telemetry) -> None:
        assert telemetry.recording and telemetry.prometheus_text() == b""
        telemetry.forwarded.add(4)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    recorder = Recorder()
    add_MetricsServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        telemetry = Telemetry(otlp_endpoint=f"127.0.0.1:{port}", prometheus=False)
        record(telemetry)
        telemetry.shutdown()
    finally:
        server.stop(0)
    received = recorder.received
    assert "otelkv.records.forwarded" in {
        m.name for r in received for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }


def test_the_last_push_at_stop_reads_the_queue_before_it_closes(sink: LokiSink, tmp_path: Path) -> None:
    """Found with OTLP push as the sidecar's default: stop() closed the store, then flushed the
    metrics, whose queue gauges then failed ("Cannot operate on a closed database") and were
    missing from the last push."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    recorder = Recorder()
    add_MetricsServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        svc = Service(
            make_config(
                sink.url,
                http_listen="",
                metrics_otlp_endpoint=f"127.0.0.1:{port}",
                **{"delivery.store_path": str(tmp_path / "q.db"), "delivery.mode": "queue"},
            )
        )
        svc.start()
        svc.stop(1)
    finally:
        server.stop(0)
    pushed = {
        m.name for r in recorder.received for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert {"otelkv.queue.records", "otelkv.queue.bytes", "otelkv.queue.oldest_age"} <= pushed
