"""otelkv serve end to end over real sockets: OTLP/gRPC in (gzip), Loki-like OTLP/HTTP out.

What a LogQL user would see is asserted on the sink, which stores entries the way Loki does
(labels from the default resource attributes, everything else structured metadata).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import grpc
import pytest
import urllib3
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.commands.event_file import in_time_order
from otelkv.commands.replay import batches
from otelkv.forward import Delivery, Request
from otelkv.forward.grpc import retry_delay
from otelkv.otlp import native
from otelkv.server import Service
from tests.conftest import EXAMPLE, TENANT, make_config
from tests.loki_sink import LokiSink, Scripted

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def events() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = in_time_order(json.loads(EXAMPLE.read_text())["items"])
    return loaded


def requests(size: int = 100) -> list[ExportLogsServiceRequest]:
    return list(batches(events(), size))


def export(stub: LogsServiceStub, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse:
    answer: ExportLogsServiceResponse = stub.Export(request, timeout=10, compression=grpc.Compression.Gzip)
    return answer


def failure(stub: LogsServiceStub, request: ExportLogsServiceRequest) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as caught:
        export(stub, request)
    assert isinstance(caught.value, grpc.Call)
    return caught.value


def details(error: grpc.Call) -> str:
    return error.details() or ""


def test_loki_user_sees_migrations_as_labels_and_structured_metadata(
    core: native.Choice, sink: LokiSink, stub: LogsServiceStub
) -> None:
    for request in requests(size=7):
        assert not export(stub, request).HasField("partial_success")
    assert len(sink.entries) == len(events())
    assert {h.get("X-Scope-OrgID") for h in sink.requests} == {TENANT}
    assert {h.get("Content-Type") for h in sink.requests} == {"application/x-protobuf"}

    # {service_name="kubevirt-events", k8s_namespace_name="virtualmachines"} | kubevirt_vm_name="rhel9-db.prod"
    stream = sink.select(service_name="kubevirt-events", k8s_namespace_name="virtualmachines")
    vm = [e for e in stream if e.metadata.get("kubevirt_vm_name") == "rhel9-db.prod"]
    failed = [e for e in vm if e.metadata.get("kubevirt_migration_phase") == "Failed"]
    assert len(failed) == 2
    for entry in failed:
        assert entry.metadata["kubevirt_migration_source_node"] == "worker-a.lab.example.com"
        assert entry.metadata["kubevirt_migration_target_node"] == "worker-b.lab.example.com"
        assert entry.metadata["kubevirt_migration_name"] == "kubevirt-evacuation-4tq8z"
        assert entry.metadata["kubevirt_migration_failure_reason"].startswith("Live migration failed")
        assert entry.metadata["severity_text"] == "Warning"
    # One end per migration (issue 21): the earliest terminal event, on both terminal records.
    assert sorted(e.metadata["kubevirt_migration_duration_seconds"] for e in failed) == ["16", "16"]
    assert {e.line for e in failed} >= {"source node reported migration failed"}
    # The other namespace is its own stream; other kinds keep their resource (no service.name).
    assert {e.metadata["kubevirt_vm_name"] for e in sink.select(k8s_namespace_name="tenant-a")} == {"web-01", "web-02"}
    others = sink.select(service_name="unknown_service")
    assert {e.metadata["k8s_object_kind"] for e in others} == {"Pod", "Node"}
    assert not any(k.startswith("kubevirt_") for e in others for k in e.metadata)


def test_target_down_is_unavailable_with_retry_info(sink: LokiSink, stub: LogsServiceStub) -> None:
    sink.stop()
    error = failure(stub, requests()[0])
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert retry_delay(error) == 1.0


def test_429_retry_after_is_honoured(sink: LokiSink, stub: LogsServiceStub) -> None:
    sink.script.append(Scripted(429, {"Retry-After": "7"}, b"Ingestion rate limit exceeded"))
    error = failure(stub, requests()[0])
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "429" in details(error)
    assert retry_delay(error) == 7.0
    export(stub, requests()[0])  # the collector's retry goes through
    assert len(sink.entries) == len(events())


def test_a_huge_retry_after_is_passed_on_cut_to_the_collectors_longest_wait(
    sink: LokiSink, stub: LogsServiceStub, service: Service
) -> None:
    """Issue 18 item 3, sync side: Loki's Retry-After: 99999 passed on whole made the collector give
    up at once (its retry stops when a wait passes its max_elapsed_time, 300 s) and drop the data."""
    sink.script.append(Scripted(429, {"Retry-After": "99999"}, b"Ingestion rate limit exceeded"))
    error = failure(stub, requests()[0])
    assert error.code() == grpc.StatusCode.UNAVAILABLE and retry_delay(error) == 30.0
    sink.script.append(Scripted(429, {"Retry-After": "99999"}, b"Ingestion rate limit exceeded"))
    answer = urllib3.PoolManager(retries=False).request(
        "POST",
        f"http://127.0.0.1:{service.http_port}/v1/logs",
        body=requests()[0].SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert answer.status == 503 and answer.headers["Retry-After"] == "30"
    export(stub, requests()[0])
    assert len(sink.entries) == len(events())


@pytest.mark.parametrize("status", [502, 503, 504, 500, 401])
def test_target_errors_are_retryable(sink: LokiSink, stub: LogsServiceStub, status: int) -> None:
    sink.script.append(Scripted(status, {}, b"upstream trouble"))
    error = failure(stub, requests()[0])
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert str(status) in details(error)


def test_slow_target_past_the_timeout_is_unavailable(sink: LokiSink, stub: LogsServiceStub) -> None:
    sink.delay = 2.5  # the forward timeout is 1 s
    error = failure(stub, requests()[0])
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "timed out" in details(error).lower()


def test_loki_400_is_a_partial_success_never_resent(core: native.Choice, sink: LokiSink, stub: LogsServiceStub) -> None:
    request = requests()[0]
    times = sorted({r.scope_logs[0].log_records[0].time_unix_nano for r in request.resource_logs})
    sink.reject_older_than = times[3]  # entries of the first three timestamps are "too old"
    too_old = sum(r.scope_logs[0].log_records[0].time_unix_nano < times[3] for r in request.resource_logs)
    answer = export(stub, request)
    assert answer.partial_success.rejected_log_records == too_old > 0
    assert "total ignored" in answer.partial_success.error_message
    assert len(sink.entries) == len(request.resource_logs) - too_old
    assert len(sink.requests) == 1


def test_gateway_413_splits_the_request(core: native.Choice, sink: LokiSink, stub: LogsServiceStub) -> None:
    sink.max_body_bytes = 2000  # gzip'ed: a few records fit, the whole batch does not
    answer = export(stub, requests()[0])
    assert not answer.HasField("partial_success")
    assert len(sink.entries) == len(events())
    assert len(sink.requests) > 2


def test_malformed_protobuf_is_invalid_argument(service: Service) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/Export")
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\x0a\xff\xff\xff\xff\x0f garbage", timeout=5)
    assert isinstance(caught.value, grpc.Call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed ExportLogsServiceRequest" in details(caught.value)


def test_oversized_request_is_resource_exhausted_naming_the_limit(sink: LokiSink) -> None:
    small = Service(make_config(sink.url, max_message_bytes=4096))
    small.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{small.grpc_port}") as channel:
            error = failure(LogsServiceStub(channel), requests()[0])
    finally:
        small.stop(1)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4096" in details(error)


def test_exact_duplicates_dropped_but_a_retry_after_failure_is_delivered(
    core: native.Choice, sink: LokiSink, stub: LogsServiceStub
) -> None:
    request = requests()[0]
    sink.script.append(Scripted(503))
    failure(stub, request)  # not delivered: the keys are not remembered
    export(stub, request)
    assert len(sink.entries) == len(events())
    export(stub, request)  # a second collector replica, or a retry after a lost answer
    assert len(sink.entries) == len(events())


def test_empty_export_is_ok_and_forwards_nothing(sink: LokiSink, stub: LogsServiceStub) -> None:
    assert not export(stub, ExportLogsServiceRequest()).HasField("partial_success")
    assert sink.requests == []


class _Broken:
    target = "broken"

    def send(self, request: Request, *, timeout: float) -> Delivery:
        raise RuntimeError("a bug")

    def close(self) -> None:
        pass


def test_an_internal_error_is_unavailable_never_unknown(sink: LokiSink) -> None:
    broken = Service(make_config(sink.url), forwarder=_Broken())
    broken.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{broken.grpc_port}") as channel:
            error = failure(LogsServiceStub(channel), requests()[0])
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "internal error: RuntimeError" in details(error)
            export(LogsServiceStub(channel), ExportLogsServiceRequest())  # still serving
    finally:
        broken.stop(1)


def test_health_service_serving_then_not_serving_on_drain(sink: LokiSink) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    svc = Service(make_config(sink.url))
    svc.start()
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            assert (
                health.Check(health_pb2.HealthCheckRequest(service=name)).status
                == health_pb2.HealthCheckResponse.SERVING
            )
        svc._grpc.drain()
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    svc.stop(1)


class _Slow:
    """A forwarder that takes its time, to catch a request in flight."""

    target = "slow"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.sent = 0

    def send(self, request: Request, *, timeout: float) -> Delivery:
        self.entered.set()
        threading.Event().wait(0.5)
        self.sent += 1
        return Delivery()

    def close(self) -> None:
        pass


def test_stop_finishes_in_flight_requests_and_is_safe_twice(sink: LokiSink) -> None:
    slow = _Slow()
    svc = Service(make_config(sink.url), forwarder=slow)
    svc.start()
    results: list[Any] = []
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
        worker = threading.Thread(target=lambda: results.append(export(LogsServiceStub(channel), requests()[0])))
        worker.start()
        assert slow.entered.wait(5)
        svc.stop(grace=5)
        worker.join(5)
    assert slow.sent == 1 and len(results) == 1  # answered OK during the drain
    svc.stop()
    assert svc.wait(0)


def test_stop_without_start(sink: LokiSink) -> None:
    svc = Service(make_config(sink.url))
    svc.stop(0.1)
    svc.stop(0.1)
    assert svc.wait(0)


def test_sync_mode_retries_quick_failures_within_the_answer_budget(sink: LokiSink) -> None:
    svc = Service(
        make_config(
            sink.url,
            **{"forward.timeout": 3.0, "delivery.retry.initial_interval": 0.05, "delivery.retry.max_interval": 0.1},
        )
    )
    svc.start()
    try:
        sink.script.extend([Scripted(503), Scripted(0), Scripted(502)])  # a quick 503, a reset, a 502
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            assert not export(LogsServiceStub(channel), requests()[0]).HasField("partial_success")
            assert len(sink.requests) == 4 and len(sink.entries) == len(events())
            sink.script.append(Scripted(429, {"Retry-After": "30"}))  # a hint past the budget: answer now
            fresh = next(batches([{**events()[0], "count": 7}], 1))  # not a duplicate of the first
            error = failure(LogsServiceStub(channel), fresh)
        assert error.code() == grpc.StatusCode.UNAVAILABLE and retry_delay(error) == 30.0
    finally:
        svc.stop(1)
