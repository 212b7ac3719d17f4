"""otelkv's own metrics: Prometheus text, and OTLP export to a real gRPC metrics receiver."""

from __future__ import annotations

import re
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import (
    MetricsServiceServicer,
    add_MetricsServiceServicer_to_server,
)

from otelkv.telemetry import Telemetry


class Recorder(MetricsServiceServicer):
    def __init__(self) -> None:
        self.received: list[ExportMetricsServiceRequest] = []

    def Export(
        self, request: ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> ExportMetricsServiceResponse:
        self.received.append(request)
        return ExportMetricsServiceResponse()


def test_metrics_are_exported_over_otlp_when_configured() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    recorder = Recorder()
    add_MetricsServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        telemetry = Telemetry(otlp_endpoint=f"127.0.0.1:{port}")
        telemetry.received.add(7)
        telemetry.enriched.add(5)
        telemetry.shutdown()  # flushes the periodic reader
        telemetry.shutdown()  # safe twice
    finally:
        server.stop(0)
    points = {m.name: sum(p.as_int for p in m.sum.data_points) for r in recorder.received for rm in r.resource_metrics
              for sm in rm.scope_metrics for m in sm.metrics if m.HasField("sum")}  # fmt: skip
    assert points["otelkv.records.received"] == 7 and points["otelkv.records.enriched"] == 5
    resource = {kv.key: kv.value.string_value for kv in recorder.received[0].resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "otelkv"


def test_prometheus_text_names() -> None:
    telemetry = Telemetry()
    telemetry.forwarded.add(3)
    text = telemetry.prometheus_text().decode()
    assert re.search(r"^otelkv_records_forwarded_total\{[^}]*\} 3\.0$", text, re.M)
    telemetry.shutdown()
