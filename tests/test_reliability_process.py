"""otelkv killed and stopped for real (child processes), and fed bad input while serving others."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import urllib3
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink
from tests.reliability import Collector, numbered_events, requests_of, stored, wait_until
from tests.serve_child import ServeChild as Child

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def write_config(tmp_path: Path, sink_url: str, **delivery: Any) -> Path:
    path = tmp_path / "otelkv.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "grpc_listen": "127.0.0.1:0",
                "http_listen": "127.0.0.1:0",
                "shutdown_grace_seconds": 10,
                "forward": {"endpoint": sink_url, "tenant": "kubevirt", "timeout": 1},
                "enrich": {"summaries": False},
                "delivery": {
                    "mode": "queue",
                    "store_path": str(tmp_path / "store.db"),
                    "retry": {"initial_interval": 0.02, "max_interval": 0.2, "max_elapsed": 60},
                    **delivery,
                },
            }
        )
    )
    return path


@pytest.fixture
def child_cleanup() -> Iterator[list[Child]]:
    children: list[Child] = []
    yield children
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()


def test_sigkill_mid_stream_then_restart_delivers_every_acknowledged_record(
    tmp_path: Path, child_cleanup: list[Child]
) -> None:
    sink = LokiSink().start()
    port = sink.port
    sink.stop()  # Loki is down: everything acknowledged waits on disk
    config = write_config(tmp_path, sink.url)
    first = Child(config)
    child_cleanup.append(first)
    client = Collector(first.grpc)
    requests = requests_of(numbered_events(200), 20)
    sender = threading.Thread(target=client.send_all, args=(requests,))
    sender.start()
    assert wait_until(lambda: len(client.acknowledged) >= 60)
    first.process.send_signal(signal.SIGKILL)  # mid-stream: some requests are in flight
    first.process.wait()
    client.stopped.set()
    sender.join(30)
    client.stopped.clear()
    back = LokiSink(port=port).start()
    try:
        second = Child(config)  # same store: resumes what was queued
        child_cleanup.append(second)
        rest = [r for r in requests if not set(_uids(r)) <= set(client.acknowledged)]
        Collector(second.grpc, acknowledged=client.acknowledged).send_all(rest)  # the collector's queue
        assert wait_until(lambda: set(stored(back)) >= set(client.acknowledged), 60)
        counts = stored(back)
        assert set(counts) == {u for r in requests for u in _uids(r)}
        # At-least-once: a request acknowledged by the dead process but not heard by the client is
        # sent again by the collector; at most one batch a kill.
        assert sum(v - 1 for v in counts.values()) <= 20
    finally:
        back.stop()


def test_sigterm_drains_the_queue_within_the_grace_period(tmp_path: Path, child_cleanup: list[Child]) -> None:
    sink = LokiSink().start()
    sink.delay = 0.05
    try:
        child = Child(write_config(tmp_path, sink.url))
        child_cleanup.append(child)
        client = Collector(child.grpc)
        client.send_all(requests_of(numbered_events(100), 10))
        child.process.send_signal(signal.SIGTERM)
        assert child.process.wait(30) == 0
        counts = stored(sink)
        assert set(counts) == set(client.acknowledged) and max(counts.values()) == 1
    finally:
        sink.stop()


# -- bad input, while a good stream flows ------------------------------------------------------


@pytest.fixture(scope="module")
def serving() -> Iterator[tuple[Service, LokiSink]]:
    sink = LokiSink().start()
    svc = Service(make_config(sink.url, max_message_bytes=2 * 1024 * 1024))
    svc.start()
    yield svc, sink
    svc.stop(2)
    sink.stop()


def raw_export(svc: Service, payload: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/Export")
        try:
            call(payload, timeout=10)
        except grpc.RpcError as error:
            if not isinstance(error, grpc.Call):
                raise
            return error.code()
    return grpc.StatusCode.OK


HTTP = urllib3.PoolManager(retries=False)


@settings(max_examples=60)
@given(
    st.binary(max_size=2048),
    st.sampled_from(["application/x-protobuf", "application/json", "text/plain", ""]),
    st.sampled_from([None, "gzip", "deflate"]),
)
def test_random_bytes_get_a_proper_status_and_the_server_keeps_serving(
    serving: tuple[Service, LokiSink], payload: bytes, content_type: str, encoding: str | None
) -> None:
    svc, _ = serving
    assert raw_export(svc, payload) in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
    headers = {"Content-Type": content_type, **({"Content-Encoding": encoding} if encoding else {})}
    answer = HTTP.request("POST", f"http://127.0.0.1:{svc.http_port}/v1/logs", body=payload, headers=headers)
    assert answer.status in (200, 400, 415)


def test_bad_input_does_not_disturb_a_good_stream(serving: tuple[Service, LokiSink]) -> None:
    svc, sink = serving
    client = Collector(f"127.0.0.1:{svc.grpc_port}")
    good = threading.Thread(target=client.send_all, args=(requests_of(numbered_events(200, "good"), 10),))
    good.start()
    nested = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(150):  # deeper than protobuf's recursion limit: only bytes can say it
        key_value = _field(1, b"k") + _field(2, nested)
        nested = _field(6, _field(1, key_value))  # AnyValue.kvlist_value { values: [KeyValue] }
    deep = _field(1, _field(2, _field(2, _field(5, nested))))  # request > resource > scope > record.body
    valid = requests_of(numbered_events(3, "one"), 3)[0].SerializeToString()
    bad_utf8 = valid.replace(b"VirtualMachineInstance", b"VirtualMachineInstanc\xff", 1)
    huge = requests_of(numbered_events(1, "huge"), 1)[0]
    huge.resource_logs[0].scope_logs[0].log_records[0].attributes.add(key="big").value.string_value = "x" * 1_000_000
    cases = {
        "deeply nested": (deep, grpc.StatusCode.INVALID_ARGUMENT),
        "truncated": (valid[: len(valid) // 2], grpc.StatusCode.INVALID_ARGUMENT),
        "invalid UTF-8": (bad_utf8, grpc.StatusCode.INVALID_ARGUMENT),
        "no records": (b"", grpc.StatusCode.OK),
        "huge attribute": (huge.SerializeToString(), grpc.StatusCode.OK),
        "over the limit": (b"\x0a" + b"\x00" * (3 * 1024 * 1024), grpc.StatusCode.RESOURCE_EXHAUSTED),
    }
    for name, (payload, expected) in cases.items():
        assert raw_export(svc, payload) == expected, name
    good.join(60)
    assert wait_until(lambda: set(client.acknowledged) <= set(stored(sink)))
    assert stored(sink)["huge-00000"] == 1 and len(client.acknowledged) == 200


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    size, varint = len(payload), bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        varint.append(byte | (0x80 if size else 0))
        if not size:
            break
    return bytes([number << 3 | 2]) + bytes(varint) + payload


def _uids(request: ExportLogsServiceRequest) -> list[str]:
    from tests.reliability import uids  # noqa: PLC0415

    return uids(request)
