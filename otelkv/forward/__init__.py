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

import base64
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

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


#: Headers whose values are not secrets (the tenant is Loki's org id, not a credential).
_HARMLESS: Final = frozenset({"x-scope-orgid", "user-agent", "content-type", "content-encoding"})
REDACTED: Final = "<redacted>"


class Redactor:
    """Takes the values of secret-bearing headers out of text a target sent back.

    The target's answer (an error body, gRPC details, a partial-success message) goes into logs
    and into the answer otelkv gives its own client; a proxy or gateway may echo a header it
    refused (``invalid API key abc…``). Every header value except the tenant is treated as a
    secret, and for ``Authorization`` also the credential after its scheme and basic auth's
    password; ``also`` adds others (the password of a URL's ``user:password@``).
    """

    def __init__(self, headers: Mapping[str, str], *, also: Iterable[str | None] = ()) -> None:
        secrets: set[str] = {secret for secret in also if secret}
        for name, value in headers.items():
            if name.lower() in _HARMLESS:
                continue
            secrets.add(value)
            scheme, _, credential = value.partition(" ")
            if name.lower() == "authorization" and credential:
                secrets.add(credential)
                if scheme.lower() == "basic":  # and the password inside it
                    with contextlib.suppress(ValueError):
                        secrets.add(base64.b64decode(credential).decode().partition(":")[2])
        # Longest first, so that a value containing another is taken out whole; short values
        # (a header of "1") are too common in text to be worth hiding, nor can they be secret.
        self._secrets = sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` without any secret header value in it."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text
