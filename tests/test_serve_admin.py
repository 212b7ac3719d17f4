"""The admin listener (``admin_listen``) and the warning for open OTLP listeners (issue 9 item 3)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import pytest
import urllib3

from otelkv import config
from otelkv.server import Service, is_loopback
from tests.conftest import ROOT, make_config
from tests.loki_sink import LokiSink

HTTP = urllib3.PoolManager(retries=False)


def status(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    answer = HTTP.request(method, f"http://127.0.0.1:{port}{path}", timeout=5)
    return answer.status, answer.data


def test_admin_listener_serves_health_and_metrics_and_nothing_else(sink: LokiSink) -> None:
    svc = Service(make_config(sink.url, admin_listen="127.0.0.1:0"))
    svc.start()
    try:
        assert svc.admin_port
        for path in ("/healthz", "/readyz", "/metrics"):
            assert status(svc.admin_port, path)[0] == 200
            assert status(svc.admin_port, path, "HEAD") == (200, b"")
            assert status(svc.http_port, path)[0] == 404  # moved off the OTLP port
        answer = HTTP.request(
            "POST",
            f"http://127.0.0.1:{svc.admin_port}/v1/logs",
            body=b"",
            headers={"Content-Type": "application/x-protobuf"},
            timeout=5,
        )
        assert answer.status == 404
        svc.pipeline.health.draining = True
        assert status(svc.admin_port, "/readyz") == (503, b"draining\n")
    finally:
        svc.stop(1)


def test_admin_listen_from_the_environment() -> None:
    loaded = config.load(environ={"OTELKV_ADMIN_LISTEN": "127.0.0.1:4321"})
    assert loaded.admin_listen == "127.0.0.1:4321"
    assert config.load(environ={}).admin_listen is None


def test_admin_listen_flag(sink: LokiSink) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otelkv",
            "serve",
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--forward",
            sink.url,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert serve.stderr is not None
        for line in serve.stderr:
            if '"otelkv serving"' in line:
                logged = json.loads(line)
                break
        else:
            pytest.fail("otelkv serve did not start")
        assert status(int(logged["admin_port"]), "/healthz") == (200, b"ok\n")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:4319", True),
        ("127.0.0.2:1", True),
        ("[::1]:4319", True),
        ("localhost:4319", True),
        ("0.0.0.0:4319", False),
        ("[::]:4319", False),
        ("10.1.2.3:4319", False),
        ("otelkv.svc:4319", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_an_open_listener_is_warned_about(sink: LokiSink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "otelkv.server")
    svc = Service(make_config(sink.url, grpc_listen="0.0.0.0:0"))  # accepts nothing: stopped at once
    svc.start()
    svc.stop(0.5)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("grpc_listen 0.0.0.0:0" in m and "without a bearer token or client certificates" in m for m in warned)
    assert not any("http_listen" in m for m in warned)  # 127.0.0.1: no warning
