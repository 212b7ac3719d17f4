"""The gRPC health listener (``admin_grpc_listen``, issue 24 item 4): the kubelet's ``grpc`` probes
through a real grpcio client; nothing but grpc.health.v1 on that port."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv import config
from otelkv.errors import ConfigError
from otelkv.receive.grpc_health import READINESS, HealthListener
from otelkv.server import Service
from otelkv.telemetry.health import Health
from tests.conftest import ROOT, make_config
from tests.loki_sink import LokiSink
from tests.test_serve_limits import PREFACE

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def check(port: int, service: str) -> int:
    """What ``Check`` answers for ``service``, as the kubelet's grpc probe asks it."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(answer.status)


def check_error(port: int, service: str) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        check(port, service)
    return raised.value.code()


@pytest.fixture
def probed(sink: LokiSink) -> Iterator[Service]:
    """A service as the sidecar runs it: no HTTP listener, probes on the gRPC health listener."""
    svc = Service(make_config(sink.url, http_listen="", admin_grpc_listen="127.0.0.1:0"))
    svc.start()
    yield svc
    svc.stop(1)


def test_liveness_and_readiness_are_serving_while_ready(probed: Service) -> None:
    assert probed.admin_grpc_port and probed.admin_grpc_port != probed.grpc_port
    assert probed.http_port == 0 and probed.admin_port is None  # no HTTP listener at all
    for service in ("", "liveness", READINESS):
        assert check(probed.admin_grpc_port, service) == SERVING, service


def test_readiness_turns_not_serving_while_draining_liveness_stays(probed: Service) -> None:
    assert probed.admin_grpc_port
    probed.pipeline.health.draining = True  # what stop() sets first, as /readyz says 503 draining
    assert check(probed.admin_grpc_port, READINESS) == NOT_SERVING
    assert check(probed.admin_grpc_port, "") == SERVING  # a draining process is alive: no restart


def test_readiness_follows_the_health_of_the_queue_and_the_target() -> None:
    refusing: list[str] = []
    health = Health(30, refusing=lambda: refusing[0] if refusing else None)
    listener = HealthListener(health, "127.0.0.1:0")
    listener.start()
    try:
        assert check(listener.port, READINESS) == SERVING
        refusing.append("queue full")
        assert check(listener.port, READINESS) == NOT_SERVING
        refusing.clear()
        assert check(listener.port, READINESS) == SERVING
        health.draining = True
        assert check(listener.port, READINESS) == NOT_SERVING
    finally:
        listener.stop(0)
        listener.stop(0)  # safe twice


def test_an_unknown_service_is_not_found(probed: Service) -> None:
    assert probed.admin_grpc_port
    assert check_error(probed.admin_grpc_port, "opentelemetry.proto.collector.logs.v1.LogsService") == (
        grpc.StatusCode.NOT_FOUND
    )


def test_logs_are_not_served_on_the_health_port(probed: Service) -> None:
    """Reaching the health listener (the pod's address) writes nothing: LogsService is not there."""
    assert probed.admin_grpc_port
    request = ExportLogsServiceRequest()
    with grpc.insecure_channel(f"127.0.0.1:{probed.admin_grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as raised:
            LogsServiceStub(channel).Export(request, timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with grpc.insecure_channel(f"127.0.0.1:{probed.grpc_port}") as channel:  # the OTLP port takes it
        LogsServiceStub(channel).Export(request, timeout=5)


def test_the_health_port_is_closed_once_stopped(sink: LokiSink) -> None:
    svc = Service(make_config(sink.url, http_listen="", admin_grpc_listen="127.0.0.1:0"))
    svc.start()
    assert svc.admin_grpc_port and check(svc.admin_grpc_port, READINESS) == SERVING
    svc.stop(1)
    svc.stop(1)
    assert check_error(svc.admin_grpc_port, READINESS) == grpc.StatusCode.UNAVAILABLE


def test_the_health_listener_beside_the_http_admin_listener(sink: LokiSink) -> None:
    """Both admin listeners may run (a migration from HTTP to gRPC probes)."""
    svc = Service(make_config(sink.url, admin_listen="127.0.0.1:0", admin_grpc_listen="127.0.0.1:0"))
    svc.start()
    try:
        assert svc.admin_port and svc.admin_grpc_port
        assert check(svc.admin_grpc_port, READINESS) == SERVING
    finally:
        svc.stop(1)


def test_admin_grpc_listen_is_checked_and_read_from_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"^admin_grpc_listen: must be HOST:PORT"):
        config.load(environ={}, overrides={"admin_grpc_listen": "4321"})
    with pytest.raises(ConfigError, match=r"^admin_grpc_listen: 0\.0\.0\.0:4319 overlaps grpc_listen"):
        config.load(environ={}, overrides={"admin_grpc_listen": "0.0.0.0:4319"})
    loaded = config.load(environ={"OTELKV_ADMIN_GRPC_LISTEN": "0.0.0.0:4322"})
    assert loaded.admin_grpc_listen == "0.0.0.0:4322"
    assert config.load(environ={}).admin_grpc_listen is None


def test_an_empty_http_listen_means_no_http_listener() -> None:
    loaded = config.load(environ={}, overrides={"http_listen": ""})
    assert loaded.http_listen == ""
    from otelkv.receive.listen import listen_keys  # noqa: PLC0415

    assert list(listen_keys(loaded)) == ["grpc_listen"]  # nothing to trial-bind for it


@pytest.mark.parametrize("how", ["environment", "flag"])
def test_serve_as_the_sidecar_runs_it(sink: LokiSink, how: str) -> None:
    """``otelkv serve --http-listen=`` with ``OTELKV_ADMIN_GRPC_LISTEN`` (as values-sidecar.yaml
    runs it) or ``--admin-grpc-listen``: no HTTP port, the health port answers, SIGTERM stops it
    with exit 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["serve", "--grpc-listen=127.0.0.1:0", "--http-listen=", f"--forward={sink.url}"]
    if how == "flag":
        args.append("--admin-grpc-listen=127.0.0.1:0")
    else:
        env["OTELKV_ADMIN_GRPC_LISTEN"] = "127.0.0.1:0"
    serve = subprocess.Popen([sys.executable, "-m", "otelkv", *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert serve.stderr is not None
        for line in serve.stderr:
            if '"otelkv serving"' in line:
                logged = json.loads(line)
                break
        else:
            pytest.fail("otelkv serve did not start")
        assert logged["http_listen"] == "" and logged["http_port"] is None
        assert check(int(logged["admin_grpc_port"]), READINESS) == SERVING
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0


def test_idle_connections_do_not_keep_the_probe_out(probed: Service) -> None:
    """Found by probing: 16 connections that sent the HTTP/2 preface and nothing more held every
    slot for 60 s, and the kubelet's probes failed for 56 s (a restart at the default
    failureThreshold). Now 20 of them leave room, and idle ones are closed after 5 s."""
    port = probed.admin_grpc_port
    assert port
    idle = []
    try:
        for _ in range(20):
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            raw.sendall(PREFACE)
            idle.append(raw)
        assert check(port, "") == SERVING
        idle[0].settimeout(15)
        assert idle[0].recv(65536)  # the server's SETTINGS (and more) first
        deadline = time.monotonic() + 15
        while idle[0].recv(65536):  # then GOAWAY and the close: idle connections end
            assert time.monotonic() < deadline
    finally:
        for raw in idle:
            raw.close()


def test_watch_is_unimplemented_without_a_log_line(probed: Service, caplog: pytest.LogCaptureFixture) -> None:
    """Found by probing: each Watch call logged a traceback at error level (7.8 MB in 10 s)."""
    assert probed.admin_grpc_port
    with grpc.insecure_channel(f"127.0.0.1:{probed.admin_grpc_port}") as channel:
        for _ in range(3):
            stub: Any = health_pb2_grpc.HealthStub(channel)  # the stubs' types leave Watch out
            stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
            with pytest.raises(grpc.RpcError) as raised:
                next(iter(stream))
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
