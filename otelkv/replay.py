"""``otelkv replay``: send recorded Events over OTLP/gRPC, shaped as the k8s_events receiver does."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.otlp.k8s_events import to_resource_logs


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What the receiver said: records sent, rejected (partial success), requests made."""

    sent: int
    rejected: int
    requests: int


def batches(events: Sequence[dict[str, Any]], size: int) -> Iterator[ExportLogsServiceRequest]:
    """Requests of ``size`` ResourceLogs each, as the collector's batch processor makes them."""
    for start in range(0, len(events), size):
        yield ExportLogsServiceRequest(resource_logs=[to_resource_logs(e) for e in events[start : start + size]])


def replay(events: Sequence[dict[str, Any]], address: str, *, batch: int = 100, timeout: float = 10.0,
           ) -> ReplayResult:  # fmt: skip
    """Send ``events`` (in time order) to ``address``; raises grpc.RpcError when a call fails."""
    sent = rejected = requests = 0
    with grpc.insecure_channel(address) as channel:
        stub = LogsServiceStub(channel)
        for request in batches(events, batch):
            answer = stub.Export(request, timeout=timeout, compression=grpc.Compression.Gzip, wait_for_ready=True)
            requests += 1
            sent += len(request.resource_logs)
            rejected += answer.partial_success.rejected_log_records
    return ReplayResult(sent, rejected, requests)
