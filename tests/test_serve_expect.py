"""``Expect: 100-continue`` on the OTLP/HTTP port (issue 18 item 9): answered once the headers
pass the limits and authentication, so that a client sends its body at once; a request refused
on its headers gets its final answer instead, and never sends its body."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink
from tests.otlp_requests import POOL

BODY = ExportLogsServiceRequest(resource_logs=POOL[:2]).SerializeToString()


def _head(port: int, extra: str = "", length: int = len(BODY)) -> bytes:
    return (
        f"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {length}\r\nExpect: 100-continue\r\n{extra}\r\n"
    ).encode()


def _read_answer(sock: socket.socket) -> bytes:
    """One answer's status line and headers (what arrives within the socket's timeout)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def served(sink: LokiSink, tmp_path: Path) -> Iterator[Service]:
    token = tmp_path / "token"
    token.write_text("t0ken")
    svc = Service(make_config(sink.url, **{"receive.auth.bearer_token_file": str(token)}))
    svc.start()
    yield svc
    svc.stop(1)


def test_the_body_is_asked_for_once_the_headers_pass(served: Service, sink: LokiSink) -> None:
    with socket.create_connection(("127.0.0.1", served.http_port), timeout=5) as sock:
        sock.sendall(_head(served.http_port, "Authorization: Bearer t0ken\r\n"))
        # before: nothing came (curl waits 1 s, then sends anyway); this read timed out
        assert _read_answer(sock).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(BODY)
        assert _read_answer(sock).startswith(b"HTTP/1.1 200 ")
    assert sink.entries


@pytest.mark.parametrize(
    ("extra", "length", "status"),
    [("", len(BODY), b"401"), ("Authorization: Bearer t0ken\r\n", 64 << 20, b"413")],
)
def test_a_request_refused_on_its_headers_gets_no_100(served: Service, extra: str, length: int, status: bytes) -> None:
    with socket.create_connection(("127.0.0.1", served.http_port), timeout=5) as sock:
        sock.sendall(_head(served.http_port, extra, length))
        answer = _read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 " + status), answer
        assert b"100 Continue" not in answer
