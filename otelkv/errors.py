"""The one error hierarchy of otelkv, and the one place that maps it to gRPC and HTTP answers.

- :class:`ConfigError`: a configuration value is wrong (start-up only, never answered to a client).

- :class:`BadRequest`: the request itself is wrong (malformed, too large). Permanent; the
  client must not send it again.
- :class:`Retryable`: the target could not take the data now (down, slow, rate-limited). The
  client keeps the data and tries again, after ``retry_after`` seconds when the target said so.

A target that refuses data for good (Loki's 400 for invalid entries, a 413) is not an error
here: the forwarder reports it as a partial success (:class:`otelkv.forward.Delivery`).

Anything else escaping the pipeline is a bug; the receivers answer it as retryable
(UNAVAILABLE / 503), never UNKNOWN, which the collector drops as permanent (its gRPC exporter
retries only CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS, and
RESOURCE_EXHAUSTED with RetryInfo: opentelemetry-collector ``exporter/otlpexporter/otlp.go``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import grpc

#: Retry hint sent with UNAVAILABLE when the target gave none: the collector waits the longer of
#: this and its own backoff (``exporterhelper``'s retry sender), so 1 s keeps its own policy in charge.
DEFAULT_RETRY_AFTER: Final = 1.0
#: The longest retry hint passed on: a target's longer one (Loki's 429 with Retry-After: 99999) is
#: cut to the collector's own longest wait (``max_interval: 30s``). Its retry gives up, dropping the
#: data, once a wait would pass its ``max_elapsed_time`` (300 s): a throttling hint means "pause".
MAX_RETRY_AFTER: Final = 30.0


class OtelkvError(Exception):
    """Base of every error otelkv answers with."""


class UserError(OtelkvError):
    """Something the user gave the command line is wrong (a file, an address, an id); the message
    names it. The command prints it in one line and exits 2."""


class ConfigError(OtelkvError, ValueError):
    """A configuration value is wrong; the message starts with its YAML key (or the variable or flag
    that set it). Found at start-up only: ``main`` exits 2 with it."""


class BadRequest(OtelkvError):
    """The request is wrong; ``too_large`` marks a size limit (RESOURCE_EXHAUSTED / 413)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class Unsupported(BadRequest):
    """An unsupported Content-Type or Content-Encoding (INVALID_ARGUMENT / 415)."""


class RequestTimeout(BadRequest):
    """The request did not arrive within ``receive.http.read_timeout`` (DEADLINE_EXCEEDED / 408,
    the connection closed after the answer)."""


class Unauthenticated(BadRequest):
    """No or a wrong bearer token (UNAUTHENTICATED / 401 with ``WWW-Authenticate: Bearer``)."""


class Retryable(OtelkvError):
    """The target could not take the data now; ``retry_after`` is its hint in seconds, if any;
    ``error_type`` a low-cardinality class of the failure for metrics (OpenTelemetry's
    ``error.type``: an HTTP status like ``503``, a gRPC code name, ``timeout``, ``connection``)."""

    def __init__(self, message: str, *, retry_after: float | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.error_type = error_type


class QueueFull(Retryable):
    """The on-disk queue is at its bound: the collector must hold the data and retry (backpressure)."""


class StoreUnavailable(Retryable):
    """The store cannot be written now (disk full, I/O error): nothing was acknowledged."""


@dataclass(frozen=True, slots=True)
class GrpcAnswer:
    """How a failure is answered over gRPC: a status code, its details and a retry delay."""

    code: grpc.StatusCode
    details: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """How a failure is answered over OTLP/HTTP: a status, the gRPC code of its ``google.rpc.Status``
    body (OTLP/HTTP answers with one), a message, and the headers it needs."""

    status: int
    code: grpc.StatusCode
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def closes(self) -> bool:
        """Whether the connection ends after the answer (the body was not all read)."""
        return self.status in (408, 413)


#: The one map: each kind of failure, its gRPC code and its HTTP status. The first class that
#: matches wins (the subclasses of BadRequest come before it); anything not listed is a bug,
#: answered UNAVAILABLE / 503 so that the client keeps the data — never UNKNOWN or 500.
_ANSWERS: Final[tuple[tuple[type[BaseException], grpc.StatusCode, int], ...]] = (
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, 401),
    (Unsupported, grpc.StatusCode.INVALID_ARGUMENT, 415),
    (RequestTimeout, grpc.StatusCode.DEADLINE_EXCEEDED, 408),
    (BadRequest, grpc.StatusCode.INVALID_ARGUMENT, 400),
    (Retryable, grpc.StatusCode.UNAVAILABLE, 503),
)


def _classify(error: BaseException) -> tuple[grpc.StatusCode, int]:
    for kind, code, status in _ANSWERS:
        if isinstance(error, kind):
            if isinstance(error, BadRequest) and error.too_large:  # a size limit, whatever the kind
                return grpc.StatusCode.RESOURCE_EXHAUSTED, 413
            return code, status
    return grpc.StatusCode.UNAVAILABLE, 503


def _details(error: BaseException) -> str:
    return str(error) if isinstance(error, OtelkvError) else f"internal error: {type(error).__name__}"


def _retry_after(error: BaseException, code: grpc.StatusCode) -> float | None:
    if code != grpc.StatusCode.UNAVAILABLE:
        return None
    hint = error.retry_after if isinstance(error, Retryable) else None
    return min(hint or DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER)


def grpc_answer(error: BaseException) -> GrpcAnswer:
    """The gRPC status for ``error``; unknown errors become UNAVAILABLE, never UNKNOWN."""
    code, _ = _classify(error)
    return GrpcAnswer(code, _details(error), _retry_after(error, code))


def http_answer(error: BaseException) -> HttpAnswer:
    """The HTTP status for ``error``; unknown errors become 503, never 500."""
    code, status = _classify(error)
    headers: list[tuple[str, str]] = []
    retry = _retry_after(error, code)
    if retry is not None:
        headers.append(("Retry-After", str(math.ceil(retry))))
    if status == 401:
        headers.append(("WWW-Authenticate", "Bearer"))
    return HttpAnswer(status, code, _details(error), tuple(headers))


def one_line(error: BaseException) -> str:
    """``error`` as one line for a user: an OSError as ``file: reason``, others with their line
    breaks folded."""
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}"
    return " ".join(str(error).split())
