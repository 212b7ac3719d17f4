"""``admin_grpc_listen``: the standard gRPC health service (``grpc.health.v1.Health``), alone on a
listener of its own, for the kubelet's ``grpc`` probes.

In the sidecar the OTLP receivers listen on 127.0.0.1 (only the collector in the same pod writes
to them), which the kubelet cannot reach; this listener takes the pod's address and serves
nothing but ``Check``: no LogsService, so reaching it writes nothing anywhere. The service name
asked for (the probe's ``grpc.service``) says which question is answered, as ``/healthz`` and
``/readyz`` do on the HTTP admin listener:

- ``""`` (a probe without ``service``) or ``liveness``: SERVING while the process runs;
- ``readiness``: SERVING while :meth:`otelkv.telemetry.health.Health.ready` says so (NOT_SERVING
  while draining, while the queue refuses data, while the target has been failing);
- any other name: NOT_FOUND, as the gRPC health protocol says.

``Watch`` is not served (UNIMPLEMENTED): the kubelet and ``grpc_health_probe`` only call ``Check``.
A synchronous grpcio server with one worker: a probe is a few bytes every few seconds.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from otelkv.receive.grpc_server import HARDENING
from otelkv.telemetry.health import Health

log = logging.getLogger(__name__)

#: The service name a readiness probe asks for (``grpc: {port: N, service: readiness}``).
READINESS: Final = "readiness"
#: The names a liveness probe may ask for (the kubelet sends ``""`` when ``service`` is not set).
LIVENESS: Final = ("", "liveness")

#: What a listener that anyone on the pod network reaches may cost: a handful of connections and
#: streams, small messages, a short handshake (probes connect, ask once and close).
OPTIONS: Final[dict[str, int]] = {
    "grpc.max_receive_message_length": 1024,
    "grpc.max_concurrent_streams": 4,
    # The kubelet connects for each probe and closes: an idle connection is an attacker holding a
    # slot (16 idle ones held for 60 s kept every probe out for 56 s: the container restarted).
    "grpc.max_allowed_incoming_connections": 64,
    "grpc.server_handshake_timeout_ms": 5000,
    "grpc.max_connection_idle_ms": 5000,
    "grpc.max_connection_age_ms": 10_000,
    "grpc.max_connection_age_grace_ms": 1000,
    **HARDENING,
}

_SERVING: Final = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING: Final = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthChecks(health_pb2_grpc.HealthServicer):
    """``Check``: liveness for ``""``/``liveness``, readiness for ``readiness`` (see the module)."""

    def __init__(self, health: Health) -> None:
        self._health = health

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """SERVING or NOT_SERVING for a known service name; NOT_FOUND for another."""
        if request.service in LIVENESS:
            return health_pb2.HealthCheckResponse(status=_SERVING)
        if request.service == READINESS:
            ready, _ = self._health.ready()
            return health_pb2.HealthCheckResponse(status=_SERVING if ready else _NOT_SERVING)
        context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service[:64]!r}: ask '' or {READINESS!r}")
        raise AssertionError("unreachable: abort raises")

    def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> Any:
        """UNIMPLEMENTED, without a log line (the base class raised, and grpc logged each call's
        traceback at error level: 10,000 calls wrote 7.8 MB of log in 10 s)."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Watch is not served: ask Check")
        raise AssertionError("unreachable: abort raises")


class HealthListener:
    """The gRPC health service alone on ``address`` (plain, no TLS: the kubelet's probe has none).
    Binds at construction (fail fast), serves after :meth:`start`; :meth:`stop` is safe twice."""

    def __init__(self, health: Health, address: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="otelkv-health")
        self._server = grpc.server(self._pool, options=list(OPTIONS.items()))
        health_pb2_grpc.add_HealthServicer_to_server(HealthChecks(health), self._server)
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as error:
            self._pool.shutdown(wait=False)
            raise OSError(f"cannot listen on {address}: {error}") from error
        if self.port == 0:
            self._pool.shutdown(wait=False)
            raise OSError(f"cannot listen on {address}")

    def start(self) -> None:
        """Serve from grpcio's threads."""
        self._server.start()

    def stop(self, grace: float) -> None:
        """Stop within ``grace`` seconds (a probe in flight is answered or dropped)."""
        event: Any = self._server.stop(grace)
        event.wait(grace + 1)
        self._pool.shutdown(wait=False, cancel_futures=True)
