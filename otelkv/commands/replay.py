"""``otelkv replay``: send recorded Events over OTLP/gRPC, shaped as the k8s_events receiver does."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.commands.event_file import read_event_file
from otelkv.config.secrets import read_secret
from otelkv.errors import ConfigError, UserError
from otelkv.otlp.k8s_events import to_resource_logs
from otelkv.textfile import TextError, read_small

_HOST_PORT: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+):([0-9]{1,5})$")


class ReplayError(UserError, RuntimeError):
    """The receiver could not be reached or refused the call; the message names the address."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What the receiver said: records sent, rejected (partial success), requests made."""

    sent: int
    rejected: int
    requests: int


def check_address(address: str) -> str:
    """``address`` when it is ``HOST:PORT`` (what grpc dials); ValueError saying what is wrong."""
    if "://" in address:
        raise ValueError(f"give HOST:PORT of otelkv's OTLP/gRPC listener, not a URL, got {address!r}")
    found = _HOST_PORT.match(address)
    if not found:
        raise ValueError(f"must be HOST:PORT (for instance 127.0.0.1:4319), got {address!r}")
    if not 0 < int(found.group(2)) <= 65535:
        raise ValueError(f"port must be 1-65535, got {address!r}")
    return address


def batches(events: Sequence[dict[str, Any]], size: int) -> Iterator[ExportLogsServiceRequest]:
    """Requests of ``size`` ResourceLogs each, as the collector's batch processor makes them."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    for start in range(0, len(events), size):
        yield ExportLogsServiceRequest(
            resource_logs=[_shaped(e, n) for n, e in enumerate(events[start : start + size], start + 1)]
        )


def _shaped(event: dict[str, Any], number: int) -> Any:
    """The event as the receiver sends it; ReplayError naming it when a value cannot be sent (a
    count or time past a 64-bit integer: no Kubernetes Event holds one)."""
    try:
        return to_resource_logs(event)
    except (ValueError, OverflowError) as error:
        raise ReplayError(f"event {number} (in time order): {error}: not a value the receiver sends") from None


def replay(
    events: Sequence[dict[str, Any]],
    address: str,
    *,
    batch: int = 100,
    timeout: float = 10.0,
    token: str | None = None,
    tls: bool = False,
    ca: bytes | None = None,
) -> ReplayResult:
    """Send ``events`` (in time order) to ``address``; raises :class:`ReplayError` when a call fails.

    ``token``: sent as ``Authorization: Bearer``; ``tls`` (with ``ca``, PEM): TLS to the receiver.
    No ``wait_for_ready``: nothing listening is said at once ("connection refused"), not after
    the timeout.
    """
    check_address(address)
    sent = rejected = requests = 0
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    channel = (
        grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca))
        if tls
        else grpc.insecure_channel(address)
    )
    with channel:
        stub = LogsServiceStub(channel)
        for request in batches(events, batch):
            try:
                answer = stub.Export(request, timeout=timeout, compression=grpc.Compression.Gzip, metadata=metadata)
            except grpc.RpcError as error:
                raise ReplayError(_explain(error, address, timeout)) from None
            requests += 1
            sent += len(request.resource_logs)
            rejected += answer.partial_success.rejected_log_records
    return ReplayResult(sent, rejected, requests)


def _explain(error: grpc.RpcError, address: str, timeout: float) -> str:
    """Which hop failed: this one (otelkv serve cannot be reached at ``address``), or the next one
    (serve answered that its own target failed: its message names the target's URL)."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or ""
    first = details.splitlines()[0] if details else "no details"
    if code == grpc.StatusCode.UNAVAILABLE and details.startswith("failed to connect to all addresses"):
        if "http/2" in details.lower() or "http1" in details.lower():
            return f"{address} does not speak gRPC (otelkv's OTLP/HTTP port? give its gRPC one, --grpc-listen)"
        if "handshake" in details.lower():
            return f"cannot reach otelkv serve at {address}: TLS handshake failed (--tls, --ca-file)"
        why = "connection refused" if "refused" in details.lower() else first
        return f"cannot reach otelkv serve at {address}: {why} (is it listening there? see --grpc-listen)"
    if code == grpc.StatusCode.UNAVAILABLE and ("Failed parsing HTTP/2" in details or "http1" in details.lower()):
        return f"{address} does not speak gRPC (otelkv's OTLP/HTTP port? give its gRPC one, --grpc-listen)"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer from {address} within {timeout:g} s (--timeout)"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"otelkv serve at {address} refused the call: {first} (--bearer-token-file / --bearer-token-env)"
    name = code.name if code is not None else "error"
    return f"otelkv serve at {address} answered {name}: {first}"


def run(args: argparse.Namespace) -> int:
    """Send the events of ``args.file`` to ``args.to``; 1 when the receiver rejected some."""
    events = read_event_file(args.file)
    try:
        token = read_secret("--bearer-token", env=args.bearer_token_env, file=args.bearer_token_file)
    except ConfigError as error:  # named as the flag: --bearer-token-file / --bearer-token-env
        raise ReplayError(str(error).replace("--bearer-token_", "--bearer-token-", 1)) from None
    ca = None
    if args.ca_file:
        try:
            ca = read_small(args.ca_file)
        except OSError as error:
            raise ReplayError(f"--ca-file: cannot read {args.ca_file!r}: {error.strerror}") from None
        except TextError as error:
            raise ReplayError(f"--ca-file: {error}") from None
    result = replay(
        events, args.to, batch=args.batch, timeout=args.timeout, token=token, tls=args.tls or ca is not None, ca=ca
    )
    print(f"sent {result.sent} events in {result.requests} requests to {args.to}; rejected {result.rejected}")
    return 0 if result.rejected == 0 else 1
