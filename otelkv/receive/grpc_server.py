"""OTLP/gRPC ``LogsService/Export`` and the standard gRPC health service on one server.

grpc.aio's server in an event loop of its own thread: a call waiting for its request message
costs a coroutine, not a worker thread, so slow or stalled clients cannot take the workers (with
the synchronous server, 8 such calls stopped every export). Decoding, enrichment and forwarding
run in a pool of ``receive.grpc.workers`` threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from otelkv.config import ReceiveGRPCConfig
from otelkv.errors import BadRequest, Retryable, grpc_answer
from otelkv.forward import Delivery
from otelkv.otlp.decode import decode_protobuf
from otelkv.pipeline import Pipeline, Reservation
from otelkv.receive.charge import decode_charge
from otelkv.receive.pool import run_charged
from otelkv.receive.response import response_for

log = logging.getLogger(__name__)

SERVICE: Final = "opentelemetry.proto.collector.logs.v1.LogsService"


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> None:
    answer = grpc_answer(error)
    status = status_pb2.Status(code=answer.code.value[0], message=answer.details)
    if answer.retry_after is not None:
        seconds = int(answer.retry_after)
        delay = duration_pb2.Duration(seconds=seconds, nanos=int((answer.retry_after - seconds) * 1e9))
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(detail)
    await context.abort_with_status(rpc_status.to_status(status))


def _detached(error: Exception) -> Exception:
    """``error`` without its traceback and causes: their frames hold the request, and a reference
    cycle would keep megabytes alive until the garbage collector's next full pass (under a flood
    of refused requests, hundreds of them: RSS grew past the memory budget)."""
    error.__traceback__ = error.__cause__ = error.__context__ = None
    return error


class LogsHandler:
    """``Export`` taking raw bytes, so that a malformed request is answered INVALID_ARGUMENT
    naming the problem (grpcio's own deserializer would answer INTERNAL, which the collector
    drops) and no exception ever escapes as UNKNOWN."""

    def __init__(self, pipeline: Pipeline, pool: ThreadPoolExecutor) -> None:
        self._pipeline = pipeline
        self._pool = pool

    async def export(self, payload: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> ExportLogsServiceResponse:
        """Handle one Export call: charged to the in-flight cap before it is decoded, until its worker
        is done with it (even when the call ends first: :func:`run_charged`)."""
        reservation = Reservation(self._pipeline.inflight)
        try:
            reservation.add(len(payload) + decode_charge(payload))
            delivery = await run_charged(self._pool, reservation, self._process, payload, reservation)
        except Exception as error:
            failure = _detached(error)
        else:
            return response_for(delivery)
        finally:
            reservation.release()  # nothing once the worker has it: given back when it is done
        del payload  # this frame may live on in the abort's traceback: not with the request in it
        if isinstance(failure, BadRequest):
            self._pipeline.invalid(failure)
        else:
            log.log(logging.DEBUG if isinstance(failure, Retryable) else logging.ERROR, "export failed: %r", failure)
        await _abort(context, failure)
        raise AssertionError("unreachable: abort raises")

    def _process(self, payload: bytes, reservation: Reservation) -> Delivery:
        return self._pipeline.export(decode_protobuf(payload), payload=payload, charge=reservation)


#: grpc core's channel arguments that bound what one connection can make it hold, whatever the
#: configuration (measured with raw HTTP/2 clients against grpcio 1.85; docs/reliability.md#memory).
HARDENING: Final[dict[str, int]] = {
    # No BDP probing: without it a connection's window stays at 64 KiB instead of growing to MiBs,
    # so an unfinished stream cannot make grpc buffer megabytes (16 x 16 streams: 178 MiB -> ~50).
    "grpc.http2.bdp_probe": 0,
    # How far grpc reads ahead of a stream's consumer (default 64 KiB) before flow control stops it.
    "grpc.http2.lookahead_bytes": 16384,
    # Experimental (not in grpc's public header, pinned by tests/test_serve_grpc_options.py): the most
    # a connection's endpoint reads ahead of the parser. Without it a WINDOW_UPDATE flood whose
    # answers are never read grew to 202-428 MiB and one endless header to 248-260 MiB; with it ~40.
    "grpc.experimental.tcp_max_read_buffer_size": 1 << 20,
}


def server_options(limits: ReceiveGRPCConfig, max_message_bytes: int) -> list[tuple[str, int]]:
    """gRPC core's channel arguments for ``receive.grpc`` (the names of configgrpc's keepalive).

    One value per key: grpc core keeps the *first* of two values for a key, so a later one added
    by mistake would be silently ignored.
    """
    ms = 1000
    options: dict[str, int] = {
        "grpc.max_receive_message_length": max_message_bytes,
        "grpc.max_send_message_length": max_message_bytes,
        "grpc.max_concurrent_streams": limits.max_concurrent_streams,
        "grpc.max_allowed_incoming_connections": limits.max_connections,
        # a connection that has not finished its HTTP/2 preface (and TLS) by then is closed: grpc's
        # default, 120 s, let 256 silent sockets take every connection slot for two minutes
        "grpc.server_handshake_timeout_ms": int(limits.handshake_timeout * ms),
        # keepalive enforcement: pings closer than this are strikes; two strikes end the connection
        "grpc.http2.min_ping_interval_without_data_ms": int(limits.keepalive_min_time * ms),
        "grpc.keepalive_permit_without_calls": int(limits.keepalive_permit_without_stream),
        "grpc.http2.max_ping_strikes": 2,
        **HARDENING,
    }
    if limits.max_connection_idle > 0:
        options["grpc.max_connection_idle_ms"] = int(limits.max_connection_idle * ms)
    if limits.max_connection_age > 0:
        options["grpc.max_connection_age_ms"] = int(limits.max_connection_age * ms)
        options["grpc.max_connection_age_grace_ms"] = int(limits.max_connection_age_grace * ms)
    return list(options.items())


class GrpcReceiver:
    """The gRPC server: LogsService and grpc.health.v1.Health. Binds at construction."""

    def __init__(
        self,
        pipeline: Pipeline,
        address: str,
        *,
        max_message_bytes: int,
        limits: ReceiveGRPCConfig | None = None,
        credentials: grpc.ServerCredentials | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        limits = limits or ReceiveGRPCConfig()
        self._pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="otelkv-grpc")
        self._handler = LogsHandler(pipeline, self._pool)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="otelkv-grpc-io", daemon=True)
        self._thread.start()
        self.health = health.aio.HealthServicer()
        try:
            self._server, self.port = self._call(
                self._bind(address, limits, max_message_bytes, credentials, list(interceptors)), 30
            )
        except BaseException:
            self._end()
            raise

    async def _bind(
        self,
        address: str,
        limits: ReceiveGRPCConfig,
        max_message_bytes: int,
        credentials: grpc.ServerCredentials | None,
        interceptors: list[grpc.aio.ServerInterceptor],
    ) -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(interceptors=interceptors, options=server_options(limits, max_message_bytes))
        method: grpc.RpcMethodHandler[bytes, ExportLogsServiceResponse] = grpc.unary_unary_rpc_method_handler(
            self._handler.export,
            request_deserializer=None,
            response_serializer=ExportLogsServiceResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Export": method})])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        try:
            port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        except RuntimeError as error:
            raise OSError(f"cannot listen on {address}: {error}") from error
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        return server, port

    def _call(self, coroutine: Awaitable[Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]

    def start(self) -> None:
        """Serve, and say so on the health service."""
        self._call(self._start(), 30)

    async def _start(self) -> None:
        await self._server.start()
        for name in ("", SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def drain(self) -> None:
        """Say NOT_SERVING on the health service (readiness) before stopping."""
        if self._thread.is_alive():
            self._call(self.health.enter_graceful_shutdown(), 5)

    def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within ``grace`` seconds; safe twice."""
        if self._thread.is_alive():
            try:
                self._call(self._server.stop(grace), grace + 2)
            except TimeoutError:
                log.warning("grpc: calls still running after %.1fs, abandoned", grace)
        self._end()

    def _end(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(2)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
