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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.config.secrets import scrub, secret_values
from otelkv.otlp.decode import decode_protobuf

__all__ = ["Delivery", "Encoded", "Forwarder", "Redactor", "Request", "count_records", "message", "wire"]


@dataclass(frozen=True, slots=True)
class Encoded:
    """A request already serialized (the native core writes one), and how many records it holds:
    sent as it is, decoded only by a target that needs the message."""

    payload: bytes
    records: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """The target took the request; ``rejected`` records of it were refused, with ``message``, and
    ``error_type`` (a status like ``400``, a gRPC code name, ``partial_success``) for metrics.

    ``refused``: when the target took part of the request and refused the rest whole (a 413 for
    one resource after the request was split), the refused records as a request of their own, so
    that they can be kept as a dead letter and replayed; None when the target did not say which."""

    rejected: int = 0
    message: str = ""
    error_type: str = ""
    refused: Encoded | None = None


#: What a forwarder sends: a request as a message, or on the wire.
Request = ExportLogsServiceRequest | Encoded


def wire(request: Request) -> bytes:
    """``request`` serialized."""
    return request.payload if isinstance(request, Encoded) else request.SerializeToString()


def message(request: Request) -> ExportLogsServiceRequest:
    """``request`` as a message, decoded as the receivers decode it: a request they took deeper
    than upb's own limit (100 levels, e.g. 49 nested arrays) decodes here too (a plain
    ``FromString`` failed on it: the stdout forwarder and the 413 split answered UNAVAILABLE)."""
    return decode_protobuf(request.payload) if isinstance(request, Encoded) else request


def count_records(request: Request) -> int:
    """How many log records ``request`` holds."""
    if isinstance(request, Encoded):
        return request.records
    return sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)


class Forwarder(Protocol):
    """Sends one request to a target."""

    @property
    def target(self) -> str:
        """The target, for logs and metrics (no credentials)."""
        ...

    def send(self, request: Request, *, timeout: float) -> Delivery:
        """Send ``request``; raise :class:`otelkv.errors.Retryable` when the target cannot take it now."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...


class Redactor:
    """Takes the values of secret-bearing headers out of text a target sent back.

    The target's answer (an error body, gRPC details, a partial-success message) goes into logs
    and into the answer otelkv gives its own client; a proxy or gateway may echo a header it
    refused (``invalid API key abc…``). Which strings are secret is decided in one place,
    :func:`otelkv.config.secrets.secret_values`; ``also`` adds others (the password of a URL's
    ``user:password@``).
    """

    def __init__(self, headers: Mapping[str, str], *, also: Iterable[str | None] = ()) -> None:
        extra = {secret for secret in also if secret and len(secret) >= 3}
        self._secrets = tuple(sorted({*secret_values(headers), *extra}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """``text`` without any secret header value in it."""
        return scrub(text, self._secrets)
