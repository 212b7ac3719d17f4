"""OTLP/gRPC to another OTLP receiver (a collector, a gateway), with gzip."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from otelkv.errors import Retryable

from . import Delivery, Redactor, Request, count_records, wire

_EXPORT: Final = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

# The codes the collector itself retries (exporter/otlpexporter/otlp.go, shouldRetry);
# RESOURCE_EXHAUSTED only with RetryInfo.
# Beside them, never a permanent rejection of the client's data:
# - INTERNAL: grpcio's own client answers it for what otelkv got wrong before anything was sent
#   ("Invalid metadata" for a header value it refuses), as well as a server for its own faults;
# - set-up errors, like the HTTP target's 401/403/404: UNAUTHENTICATED, PERMISSION_DENIED,
#   NOT_FOUND, UNIMPLEMENTED (not an OTLP logs receiver). The data is kept (the collector's or
#   otelkv's queue) while an operator fixes credentials, tenant or address.
_RETRYABLE: Final = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


class GrpcForwarder:
    """Calls ``LogsService/Export`` on ``host:port`` (TLS for ``grpcs://``)."""

    def __init__(
        self,
        address: str,
        *,
        secure: bool,
        headers: Mapping[str, str] | None = None,
        ca_file: str | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        self._address = address
        # ``max_message_bytes`` is what otelkv accepts, not a send limit: enrichment makes a request
        # larger than it came, and grpcio's own RESOURCE_EXHAUSTED for passing it would read as the
        # target refusing the data for good. The target's receive limit decides.
        del max_message_bytes
        options = [("grpc.max_send_message_length", -1)]
        if secure:
            roots = open(ca_file, "rb").read() if ca_file else None  # noqa: SIM115 - read once at start-up
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        # LogsService/Export, sending a request as it is when it comes serialized (the stub's own
        # method would serialize it again)
        self._export = self._channel.unary_unary(
            _EXPORT, request_serializer=wire, response_deserializer=ExportLogsServiceResponse.FromString
        )
        self._metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self._redact = Redactor(dict(self._metadata))
        self._scheme = "grpcs" if secure else "grpc"

    @property
    def target(self) -> str:
        """The address calls go to."""
        return f"{self._scheme}://{self._address}"

    def send(self, request: Request, *, timeout: float) -> Delivery:
        """Export ``request``; map the status as the collector's own exporter would."""
        try:
            answer = self._export(request, timeout=timeout, metadata=self._metadata, compression=grpc.Compression.Gzip)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = self._redact((error.details() if isinstance(error, grpc.Call) else str(error)) or "")
            delay = retry_delay(error)
            if code in _RETRYABLE or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
                raise Retryable(
                    f"{self.target}: {code.name}: {details}", retry_after=delay, error_type=failure_class(code, details)
                ) from error
            return Delivery(count_records(request), f"{self.target}: {code.name}: {details}", code.name)
        partial = answer.partial_success
        kind = "partial_success" if partial.rejected_log_records or partial.error_message else ""
        return Delivery(partial.rejected_log_records, self._redact(partial.error_message), kind)

    def close(self) -> None:
        """Close the channel; safe twice."""
        self._channel.close()


def retry_delay(error: grpc.RpcError | grpc.Call) -> float | None:
    """The RetryInfo delay in a failed call's status details, if the server sent one."""
    if not isinstance(error, grpc.Call):
        return None
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


_TLS: Final = re.compile(r"handshake|ssl|tls|certificate", re.IGNORECASE)
_CONNECTION: Final = re.compile(
    r"failed to connect|connection refused|errors resolving|name not found|unreachable|socket closed|"
    r"connection reset|broken pipe",
    re.IGNORECASE,
)


def failure_class(code: grpc.StatusCode, details: str) -> str:
    """The class of a retryable failure as the Collector's exporters name it: ``timeout`` for a
    deadline, ``tls`` and ``connection`` (refused, unreachable, the name not resolved) from grpc's
    UNAVAILABLE details, else the code's name (the target's own answer)."""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "timeout"
    if code == grpc.StatusCode.UNAVAILABLE:
        if _TLS.search(details):
            return "tls"
        if _CONNECTION.search(details):
            return "connection"
    return code.name
