"""Each kind of failure to reach the target is classed as the Collector's exporters class it
(issue 20 item 2: a stopped Loki and an unresolvable name were counted as ``timeout``), against
real sockets: nothing listening, a name that cannot resolve (RFC 2606 ``.invalid``), a peer that
does not speak TLS, and one that accepts and never answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.errors import Retryable
from otelkv.forward.grpc import GrpcForwarder
from otelkv.forward.http import HttpForwarder


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.fixture
def not_tls() -> Iterator[int]:
    """A port that answers any bytes with plain HTTP/1.1 (no TLS), then closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    server.close()


def _http(url: str) -> Retryable:
    with pytest.raises(Retryable) as caught:
        HttpForwarder(url).send(ExportLogsServiceRequest(), timeout=1)
    return caught.value


def _grpc(address: str, *, secure: bool) -> Retryable:
    forwarder = GrpcForwarder(address, secure=secure)
    try:
        with pytest.raises(Retryable) as caught:
            forwarder.send(ExportLogsServiceRequest(), timeout=1)
    finally:
        forwarder.close()
    return caught.value


def test_http_failures_are_classed(silent: int, not_tls: int) -> None:
    refused = _http(f"http://127.0.0.1:{_closed_port()}/otlp")
    assert refused.error_type == "connection" and "connection refused" in str(refused)
    assert "NewConnectionError" not in str(refused) and str(refused).count("127.0.0.1") == 1  # the URL once
    unresolved = _http("http://loki.invalid/otlp")
    assert unresolved.error_type == "connection" and "cannot resolve" in str(unresolved)
    assert _http(f"https://127.0.0.1:{not_tls}/otlp").error_type == "tls"
    assert _http(f"http://127.0.0.1:{silent}/otlp").error_type == "timeout"


def test_grpc_failures_are_classed(silent: int, not_tls: int) -> None:
    assert _grpc(f"127.0.0.1:{_closed_port()}", secure=False).error_type == "connection"
    assert _grpc("loki.invalid:4317", secure=False).error_type == "connection"
    assert _grpc(f"127.0.0.1:{not_tls}", secure=True).error_type == "tls"
    assert _grpc(f"127.0.0.1:{silent}", secure=False).error_type == "timeout"
