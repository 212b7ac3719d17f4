"""Bounded memory and connections on both listeners (issue 8 items 3 and 4, issue 9 item 4).

The mechanisms only: memory figures come from bench/bench.py (docs/reliability.md).
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import grpc
import pytest
import urllib3
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.forward.grpc import retry_delay
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink
from tests.test_serve_grpc import SERVICE, requests
from tests.test_serve_http_protocol import connect, post_head, read_response

MiB = 1 << 20
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
HTTP = urllib3.PoolManager(retries=False)


def large_request(size: int) -> ExportLogsServiceRequest:
    """A valid request of about ``size`` bytes that gzip makes tiny."""
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "a" * size
    return request


def started(sink: LokiSink, **overrides: object) -> Service:
    svc = Service(make_config(sink.url, **overrides))
    svc.start()
    return svc


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as resources:
        yield resources


def http_export(svc: Service, body: bytes, **headers: str) -> urllib3.BaseHTTPResponse:
    return HTTP.request(
        "POST",
        f"http://127.0.0.1:{svc.http_port}/v1/logs",
        body=body,
        headers={"Content-Type": "application/x-protobuf", **headers},
        timeout=10,
    )


def grpc_export(svc: Service, request: ExportLogsServiceRequest) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
        try:
            LogsServiceStub(channel).Export(request, timeout=10)
        except grpc.RpcError as error:
            return error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


def test_slow_uploads_do_not_hold_the_inflight_cap(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink, max_message_bytes=MiB, **{"delivery.max_inflight_bytes": 12 * MiB})
    stack.callback(svc.stop, 1)
    for _ in range(12):  # together they declare more than the whole cap, and send 10 bytes each
        raw = stack.enter_context(connect(svc))
        raw.sendall(post_head(MiB) + b"x" * 10)
    assert svc.pipeline.inflight.charged < 1024
    assert grpc_export(svc, requests()[0]) == grpc.StatusCode.OK
    assert http_export(svc, requests(size=7)[1].SerializeToString()).status == 200


def test_a_gzip_request_is_charged_its_inflated_size(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink)
    stack.callback(svc.stop, 1)
    body = gzip.compress(large_request(2 * MiB).SerializeToString())
    assert len(body) < 16 * 1024
    with svc.pipeline.inflight.admit(svc.pipeline.inflight.limit - MiB):  # all but 1 MiB taken
        answer = http_export(svc, body, **{"Content-Encoding": "gzip"})
    assert answer.status == 503 and answer.headers["Retry-After"] == "1"
    assert http_export(svc, body, **{"Content-Encoding": "gzip"}).status == 200  # once there is room


def test_a_grpc_request_is_charged_its_decoded_size(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink)
    stack.callback(svc.stop, 1)
    request = large_request(200 * 1024)
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
        stub = LogsServiceStub(channel)
        with svc.pipeline.inflight.admit(svc.pipeline.inflight.limit - MiB), pytest.raises(grpc.RpcError) as caught:
            stub.Export(request, timeout=10)
        assert isinstance(caught.value, grpc.Call)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and retry_delay(caught.value) == 1.0
        stub.Export(request, timeout=10)


def test_http_connections_beyond_the_limit_are_refused_with_503(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink, **{"receive.http.max_connections": 3})
    stack.callback(svc.stop, 1)
    held = [stack.enter_context(connect(svc)) for _ in range(3)]
    with connect(svc) as extra:
        status, headers, _ = read_response(extra)
        assert status == 503 and headers["retry-after"] == "1"
    held.pop().close()
    for _ in range(50):  # the server sees the close soon; bounded
        if svc._http is None or len(svc._http.connections.open) < 3:
            break
        time.sleep(0.05)
    assert HTTP.request("GET", f"http://127.0.0.1:{svc.http_port}/healthz", timeout=5).status == 200


def test_grpc_connections_beyond_the_limit_are_closed(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink, **{"receive.grpc.max_connections": 2})
    stack.callback(svc.stop, 1)
    held = [stack.enter_context(socket.create_connection(("127.0.0.1", svc.grpc_port), timeout=5)) for _ in range(2)]
    for raw in held:
        raw.sendall(PREFACE)
        assert raw.recv(9)  # the server's SETTINGS: accepted
    with socket.create_connection(("127.0.0.1", svc.grpc_port), timeout=5) as extra:
        extra.sendall(PREFACE)
        assert extra.recv(9) == b""  # closed
    for raw in held:
        raw.close()
    for _ in range(50):
        if grpc_export(svc, requests()[0]) == grpc.StatusCode.OK:
            break
        time.sleep(0.1)
    else:
        pytest.fail("gRPC exports still refused after the connections closed")


def frames(raw: socket.socket, until_type: int) -> list[tuple[int, bytes]]:
    """HTTP/2 frames read from ``raw`` up to one of ``until_type`` (or the end)."""
    seen: list[tuple[int, bytes]] = []
    buffer = b""
    while True:
        while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
            length, kind = int.from_bytes(buffer[:3], "big"), buffer[3]
            seen.append((kind, buffer[9 : 9 + length]))
            buffer = buffer[9 + length :]
            if kind == until_type:
                return seen
        chunk = raw.recv(65536)
        if not chunk:
            return seen
        buffer += chunk


def test_grpc_announces_max_concurrent_streams(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink, **{"receive.grpc.max_concurrent_streams": 5})
    stack.callback(svc.stop, 1)
    with socket.create_connection(("127.0.0.1", svc.grpc_port), timeout=5) as raw:
        raw.sendall(PREFACE)
        kind, payload = frames(raw, until_type=4)[-1]
        settings = dict(struct.unpack(">HI", payload[i : i + 6]) for i in range(0, len(payload), 6))
        assert kind == 4 and settings[3] == 5  # SETTINGS_MAX_CONCURRENT_STREAMS


def test_idle_grpc_connections_are_closed(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink, **{"receive.grpc.max_connection_idle": 0.3})
    stack.callback(svc.stop, 1)
    with socket.create_connection(("127.0.0.1", svc.grpc_port), timeout=10) as raw:
        raw.sendall(PREFACE)
        goaway = [payload for kind, payload in frames(raw, until_type=7) if kind == 7]
        assert goaway and b"idle" in goaway[0]


def test_idle_http_connections_are_closed(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink, **{"receive.http.idle_timeout": 0.3})
    stack.callback(svc.stop, 1)
    with connect(svc) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: otelkv\r\n\r\n")
        assert read_response(raw)[0] == 200
        assert raw.recv(100) == b""  # closed by the server once idle


def test_grpc_keepalive_enforcement_ends_a_ping_flood(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink)  # defaults: pings at most every 10 s, none while no call is open
    stack.callback(svc.stop, 1)
    with socket.create_connection(("127.0.0.1", svc.grpc_port), timeout=10) as raw:
        raw.sendall(PREFACE + b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")  # + SETTINGS ack
        for i in range(5):
            raw.sendall(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + bytes([i]) * 8)  # PING
        goaway = [payload for kind, payload in frames(raw, until_type=7) if kind == 7]
        assert goaway and goaway[0][4:8] == b"\x00\x00\x00\x0b"  # ENHANCE_YOUR_CALM
        assert b"too_many_pings" in goaway[0]


def test_grpc_keepalive_enforcement_is_configurable(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(
        sink, **{"receive.grpc.keepalive_min_time": 0.001, "receive.grpc.keepalive_permit_without_stream": True}
    )
    stack.callback(svc.stop, 1)
    with socket.create_connection(("127.0.0.1", svc.grpc_port), timeout=10) as raw:
        raw.sendall(PREFACE + b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        acks = 0
        for i in range(5):
            raw.sendall(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + bytes([i]) * 8)
            seen = frames(raw, until_type=6)  # up to this ping's ACK
            assert all(kind != 7 for kind, _ in seen)  # no GOAWAY
            acks += 1
            time.sleep(0.01)  # keep above keepalive_min_time
        assert acks == 5


def test_stalled_grpc_calls_do_not_take_the_workers(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink)  # 8 workers
    stack.callback(svc.stop, 1)
    gate = threading.Event()
    stack.callback(gate.set)

    def never() -> Iterator[bytes]:  # a call whose request message never comes
        gate.wait(30)
        yield from ()

    calls = []  # kept: a call object garbage-collected is cancelled
    for _ in range(12):
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}"))
        stalled: grpc.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(
            f"/{SERVICE}/Export", request_serializer=None, response_deserializer=None
        )
        calls.append(stalled.future(never(), timeout=30))
    time.sleep(0.5)  # let the server take them up before the export that must still pass
    assert grpc_export(svc, requests()[0]) == grpc.StatusCode.OK
