"""Forwarders: send an enriched OTLP logs request to one target and classify the outcome.

Each target kind is a module of its own (``http``: OTLP/HTTP protobuf, Loki's native OTLP
endpoint; ``grpc``: OTLP/gRPC; ``stdout``: JSON lines). A forwarder sends once and says what
happened; retrying is the collector's job (its retry and queue hold the data while otelkv
answers UNAVAILABLE), so a forwarder never sleeps.

- accepted → :class:`Delivery` with ``rejected == 0``;
- accepted in part, or refused for good (Loki's 400 stores the valid entries; a 413 never
  fits) → :class:`Delivery` with the count and the target's message, never re-sent;
- not now (unreachable, timeout, 429, 5xx) → raises :class:`otelkv.errors.Retryable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest


@dataclass(frozen=True, slots=True)
class Delivery:
    """The target took the request; ``rejected`` records of it were refused, with ``message``, and
    ``error_type`` (a status like ``400``, a gRPC code name, ``partial_success``) for metrics."""

    rejected: int = 0
    message: str = ""
    error_type: str = ""


class Forwarder(Protocol):
    """Sends one request to a target."""

    @property
    def target(self) -> str:
        """The target, for logs and metrics (no credentials)."""
        ...

    def send(self, request: ExportLogsServiceRequest, *, timeout: float) -> Delivery:
        """Send ``request``; raise :class:`otelkv.errors.Retryable` when the target cannot take it now."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...


def count_records(request: ExportLogsServiceRequest) -> int:
    """How many log records ``request`` holds."""
    return sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
