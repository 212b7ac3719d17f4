"""OTLP/gRPC ``LogsService/Export`` and the standard gRPC health service on one server."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent import futures
from typing import Final

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from otelkv.config import ReceiveGRPCConfig
from otelkv.errors import BadRequest, grpc_answer
from otelkv.pipeline import Pipeline
from otelkv.receive import DECODE_COST, response_for
from otelkv.receive.body import decode_protobuf

log = logging.getLogger(__name__)

SERVICE: Final = "opentelemetry.proto.collector.logs.v1.LogsService"


def _abort(context: grpc.ServicerContext, error: BaseException) -> None:
    answer = grpc_answer(error)
    status = status_pb2.Status(code=answer.code.value[0], message=answer.details)
    if answer.retry_after is not None:
        seconds = int(answer.retry_after)
        delay = duration_pb2.Duration(seconds=seconds, nanos=int((answer.retry_after - seconds) * 1e9))
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(detail)
    context.abort_with_status(rpc_status.to_status(status))


class LogsHandler:
    """``Export`` taking raw bytes, so that a malformed request is answered INVALID_ARGUMENT
    naming the problem (grpcio's own deserializer would answer INTERNAL, which the collector
    drops) and no exception ever escapes as UNKNOWN."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def export(self, payload: bytes, context: grpc.ServicerContext) -> ExportLogsServiceResponse:
        """Handle one Export call."""
        try:
            with self._pipeline.inflight.admit((1 + DECODE_COST) * len(payload)):
                request = decode_protobuf(payload)
                delivery = self._pipeline.export(request)
        except Exception as error:
            if isinstance(error, BadRequest):
                self._pipeline.invalid()
            else:
                log.debug("export failed: %s", error)
            _abort(context, error)
            raise  # unreachable: abort raises
        return response_for(delivery)


def server_options(limits: ReceiveGRPCConfig, max_message_bytes: int) -> list[tuple[str, int]]:
    """gRPC core's channel arguments for ``receive.grpc`` (the names of configgrpc's keepalive)."""
    ms = 1000
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
        ("grpc.max_allowed_incoming_connections", limits.max_connections),
        # keepalive enforcement: pings closer than this are strikes; two strikes end the connection
        ("grpc.http2.min_ping_interval_without_data_ms", int(limits.keepalive_min_time * ms)),
        ("grpc.keepalive_permit_without_calls", int(limits.keepalive_permit_without_stream)),
        ("grpc.http2.max_ping_strikes", 2),
    ]
    if limits.max_connection_idle > 0:
        options.append(("grpc.max_connection_idle_ms", int(limits.max_connection_idle * ms)))
    if limits.max_connection_age > 0:
        options.append(("grpc.max_connection_age_ms", int(limits.max_connection_age * ms)))
        options.append(("grpc.max_connection_age_grace_ms", int(limits.max_connection_age_grace * ms)))
    return options


class GrpcReceiver:
    """The gRPC server: LogsService and grpc.health.v1.Health."""

    def __init__(self, pipeline: Pipeline, address: str, *, max_message_bytes: int,
                 limits: ReceiveGRPCConfig | None = None, credentials: grpc.ServerCredentials | None = None,
                 interceptors: Sequence[grpc.ServerInterceptor] = ()) -> None:  # fmt: skip
        limits = limits or ReceiveGRPCConfig()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="otelkv-grpc"),
            interceptors=list(interceptors),
            options=server_options(limits, max_message_bytes),
        )
        handler = LogsHandler(pipeline)
        method: grpc.RpcMethodHandler[bytes, ExportLogsServiceResponse] = grpc.unary_unary_rpc_method_handler(
            handler.export, request_deserializer=None, response_serializer=ExportLogsServiceResponse.SerializeToString
        )
        self._server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Export": method})])
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        if credentials is not None:
            self.port = self._server.add_secure_port(address, credentials)
        else:
            self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")

    def start(self) -> None:
        """Serve, and say so on the health service."""
        self._server.start()
        for name in ("", SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def drain(self) -> None:
        """Say NOT_SERVING on the health service (readiness) before stopping."""
        self.health.enter_graceful_shutdown()

    def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within ``grace`` seconds."""
        self._server.stop(grace).wait(grace + 1)
