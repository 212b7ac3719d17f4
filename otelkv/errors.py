"""The one error hierarchy of otelkv, and the one place that maps it to gRPC and HTTP answers.

- :class:`ConfigError`: a configuration value is wrong (start-up only, never answered to a client).

- :class:`BadRequest`: the request itself is wrong (malformed, too large). Permanent; the
  client must not send it again.
- :class:`Retryable`: the target could not take the data now (down, slow, rate-limited). The
  client keeps the data and tries again, after ``retry_after`` seconds when the target said so.

A target that refuses data for good (Loki's 400 for invalid entries, a 413) is not an error
here: the forwarder reports it as a partial success (:class:`otelkv.forward.Delivery`).

Anything else escaping the pipeline is a bug; the receivers answer it as retryable
(UNAVAILABLE / 503), never UNKNOWN, which the collector would drop (FACTS §2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import grpc

#: Retry hint sent with UNAVAILABLE when the target gave none: the collector waits the longer of
#: this and its own backoff (FACTS §2), so 1 s keeps its own policy in charge.
DEFAULT_RETRY_AFTER: Final = 1.0


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


class Retryable(OtelkvError):
    """The target could not take the data now; ``retry_after`` is its hint in seconds, if any;
    ``error_type`` a low-cardinality class of the failure for metrics (OpenTelemetry's
    ``error.type``: an HTTP status like ``503``, a gRPC code name, ``timeout``, ``connection``)."""

    def __init__(self, message: str, *, retry_after: float | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.error_type = error_type


@dataclass(frozen=True, slots=True)
class GrpcAnswer:
    """How a failure is answered over gRPC: a status code, its details and a retry delay."""

    code: grpc.StatusCode
    details: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """How a failure is answered over HTTP: a status, a message and a Retry-After header."""

    status: int
    message: str
    retry_after: int | None = None


def grpc_answer(error: BaseException) -> GrpcAnswer:
    """The gRPC status for ``error``; unknown errors become UNAVAILABLE, never UNKNOWN."""
    if isinstance(error, BadRequest):
        code = grpc.StatusCode.RESOURCE_EXHAUSTED if error.too_large else grpc.StatusCode.INVALID_ARGUMENT
        return GrpcAnswer(code, str(error))
    if isinstance(error, Retryable):
        return GrpcAnswer(grpc.StatusCode.UNAVAILABLE, str(error), error.retry_after or DEFAULT_RETRY_AFTER)
    return GrpcAnswer(grpc.StatusCode.UNAVAILABLE, f"internal error: {type(error).__name__}", DEFAULT_RETRY_AFTER)


def http_answer(error: BaseException) -> HttpAnswer:
    """The HTTP status for ``error``; unknown errors become 503, never 500."""
    if isinstance(error, BadRequest):
        return HttpAnswer(413 if error.too_large else 400, str(error))
    retry = math.ceil(error.retry_after or DEFAULT_RETRY_AFTER) if isinstance(error, Retryable) else 1
    message = str(error) if isinstance(error, Retryable) else f"internal error: {type(error).__name__}"
    return HttpAnswer(503, message, retry)


def one_line(error: BaseException) -> str:
    """``error`` as one line for a user: an OSError as ``file: reason``, others with their line
    breaks folded."""
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}"
    return " ".join(str(error).split())
