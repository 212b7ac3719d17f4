"""Request bodies that are odd or hostile: every gzip member, trailing bytes, deep JSON and deep
protobuf (issue 8 items 6 and 8, receive side)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import urllib3
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.commands.replay import batches
from otelkv.forward import Delivery, Request
from otelkv.forward import message as as_message
from otelkv.otlp.decode import message_depth
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.test_serve_grpc import events

HTTP = urllib3.PoolManager(retries=False)


def post(
    service: Service, body: bytes, content_type: str = "application/x-protobuf", **headers: str
) -> urllib3.BaseHTTPResponse:
    return HTTP.request(
        "POST",
        f"http://127.0.0.1:{service.http_port}/v1/logs",
        body=body,
        headers={"Content-Type": content_type, **headers},
        timeout=10,
    )


def message(answer: urllib3.BaseHTTPResponse) -> str:
    if answer.headers["Content-Type"] == "application/json":
        return str(json.loads(answer.data)["message"])
    return str(status_pb2.Status.FromString(answer.data).message)


def test_every_gzip_member_is_read(sink: LokiSink, service: Service) -> None:
    first, second = list(batches(events(), 4))[:2]
    body = gzip.compress(first.SerializeToString()) + gzip.compress(second.SerializeToString())
    # protobuf concatenation is a merge: both members' resource_logs make one request
    answer = post(service, body, **{"Content-Encoding": "gzip"})
    assert answer.status == 200
    assert len(sink.entries) == 8


@pytest.mark.parametrize(
    ("tail", "named"),
    [
        (b"garbage", "bytes after the gzip stream"),
        (b"\x1f\x8b\x08\x00garbage", "not valid gzip"),
    ],
)
def test_bytes_after_the_gzip_stream_are_400(sink: LokiSink, service: Service, tail: bytes, named: str) -> None:
    body = gzip.compress(next(batches(events(), 4)).SerializeToString()) + tail
    answer = post(service, body, **{"Content-Encoding": "gzip"})
    assert answer.status == 400 and named in message(answer)
    assert sink.requests == []


def test_a_cut_gzip_stream_is_400(service: Service) -> None:
    body = gzip.compress(next(batches(events(), 4)).SerializeToString())[:-10]
    answer = post(service, body, **{"Content-Encoding": "gzip"})
    assert answer.status == 400 and "not valid gzip" in message(answer)


def nested_kvlist(levels: int) -> bytes:
    """An OTLP/JSON request whose one record's body is a kvlist ``levels`` deep (written as text:
    json.dumps itself ends in RecursionError this deep)."""
    value = '{"stringValue": "x"}'
    for i in range(levels):
        value = f'{{"kvlistValue": {{"values": [{{"key": "k{i}", "value": {value}}}]}}}}'
    record = f'{{"timeUnixNano": "1", "body": {value}}}'
    return f'{{"resourceLogs": [{{"scopeLogs": [{{"logRecords": [{record}]}}]}}]}}'.encode()


@pytest.mark.parametrize(
    "body",
    [
        nested_kvlist(300),
        b'{"resourceLogs": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        b"[" * 100_000,
    ],
)
def test_deep_json_is_400_not_retryable(sink: LokiSink, service: Service, body: bytes) -> None:
    answer = post(service, body, "application/json")
    assert answer.status == 400 and "nested" in message(answer)
    assert sink.requests == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"resourceLogs": 5}',
        b'{"resourceLogs": [{"scopeLogs": 5}]}',
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": 7}]}]}',
        b"[]",
        b'"x"',
    ],
)
def test_json_of_the_wrong_shape_is_400_and_counted(sink: LokiSink, service: Service, body: bytes) -> None:
    # Found by probing: lists where objects belong raised TypeError before protobuf's parser saw
    # them (503 "internal error", retried by the collector, never counted); [] and "x" were 200.
    answer = post(service, body, "application/json")
    assert answer.status == 400, message(answer)
    assert sink.requests == []
    assert 'otelkv_requests_invalid_total{error_type="malformed"} 1.0' in service.telemetry.prometheus_text().decode()


def test_json_with_30_kvlist_levels_is_taken(sink: LokiSink, service: Service) -> None:
    answer = post(service, nested_kvlist(30), "application/json")
    assert answer.status == 200, message(answer)
    assert len(sink.entries) == 1


class Capture:
    """A forwarder that keeps what it is given (the target is not what is tested here)."""

    target = "capture"

    def __init__(self) -> None:
        self.sent: list[ExportLogsServiceRequest] = []

    def send(self, request: Request, *, timeout: float) -> Delivery:
        self.sent.append(as_message(request))  # the native core sends bytes
        return Delivery()

    def close(self) -> None:
        pass


def deep_request(levels: int) -> ExportLogsServiceRequest:
    """A valid request whose one record's body is a kvlist ``levels`` deep."""
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    value = record.body
    for i in range(levels):
        entry = value.kvlist_value.values.add()
        entry.key = f"k{i}"
        value = entry.value
    value.string_value = "bottom"
    return request


@pytest.fixture
def capturing() -> Iterator[tuple[Service, Capture]]:
    capture = Capture()
    svc = Service(make_config("http://127.0.0.1:9/otlp"), forwarder=capture)
    svc.start()
    yield svc, capture
    svc.stop(1)


def test_a_record_deeper_than_upb_allows_is_forwarded_as_it_came(capturing: tuple[Service, Capture]) -> None:
    svc, capture = capturing
    request = deep_request(40)  # 120 message levels: upb's own limit is 100
    with pytest.raises(DecodeError):
        ExportLogsServiceRequest.FromString(request.SerializeToString())
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
        LogsServiceStub(channel).Export(request, timeout=10)
    assert post(svc, request.SerializeToString()).status == 200
    assert len(capture.sent) == 2
    for sent in capture.sent:
        assert (
            sent.resource_logs[0].scope_logs[0].log_records[0].body
            == request.resource_logs[0].scope_logs[0].log_records[0].body
        )


def test_a_record_deeper_than_otelkv_allows_is_400(capturing: tuple[Service, Capture]) -> None:
    svc, capture = capturing
    body = deep_request(200).SerializeToString()  # 600 message levels
    answer = post(svc, body)
    assert answer.status == 400 and "malformed" in message(answer)
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel, pytest.raises(grpc.RpcError) as caught:
        LogsServiceStub(channel).Export(deep_request(200), timeout=10)
    assert isinstance(caught.value, grpc.Call) and caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert capture.sent == []
    assert ExportLogsServiceRequest.FromString(next(batches(events(), 4)).SerializeToString())  # upb's limit is back


@pytest.mark.parametrize(
    ("payload", "depth"),
    [
        (b"", 1),
        # request, resource logs, scope logs, log record, attribute (KeyValue), its AnyValue
        (next(batches(events(), 4)).SerializeToString(), 6),
        # request, resource logs, scope logs, log record, body (AnyValue), then 3 a kvlist level
        (deep_request(40).SerializeToString(), 5 + 3 * 40),
        (deep_request(40).SerializeToString()[:-3], None),  # cut short
        (b"\x0a\xff\xff\xff\xff\x0f", None),  # a length past the end
    ],
)
def test_message_depth(payload: bytes, depth: int | None) -> None:
    assert message_depth(payload, ExportLogsServiceRequest.DESCRIPTOR, 400) == depth


def test_a_record_deeper_than_upb_allows_goes_through_the_queue_too(tmp_path: Path) -> None:
    # Queue mode stores the request's bytes and decodes them again before sending: that decode
    # must lift upb's limit as the receivers do, or the batch is refused as corrupt.
    capture = Capture()
    config = make_config(
        "http://127.0.0.1:9/otlp", **{"delivery.mode": "queue", "delivery.store_path": str(tmp_path / "q.db")}
    )
    svc = Service(config, forwarder=capture)
    svc.start()
    try:
        request = deep_request(40)
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            LogsServiceStub(channel).Export(request, timeout=10)
        deadline = time.monotonic() + 20
        while not capture.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        svc.stop(5)
    assert [s.resource_logs[0].scope_logs[0].log_records[0].body for s in capture.sent] == [
        request.resource_logs[0].scope_logs[0].log_records[0].body
    ]


def test_a_body_over_the_size_limit_is_counted_too_large(service: Service) -> None:
    # Found in review: the receivers counted every refused request as malformed.
    answer = post(service, b"\0" * (service.config.max_message_bytes + 1))
    assert answer.status == 413
    text = service.telemetry.prometheus_text().decode()
    assert 'otelkv_requests_invalid_total{error_type="too_large"} 1.0' in text


def test_a_lone_surrogate_in_json_becomes_u_fffd_and_loses_nothing(sink: LokiSink, service: Service) -> None:
    # Found by probing (issue 18): a lone UTF-16 surrogate escape (JSON allows "\ud800"; no
    # UTF-8 holds it) in one record refused the whole request with 400. Go's encoding/json reads
    # it as U+FFFD; so does otelkv now, in strings and keys alike.
    records = [
        '{"timeUnixNano": "1", "body": {"stringValue": "first, intact"}}',
        '{"timeUnixNano": "2", "body": {"stringValue": "bad \\ud800 here"},'
        ' "attributes": [{"key": "k\\uDC00", "value": {"stringValue": "v"}}]}',
        '{"timeUnixNano": "3", "body": {"stringValue": "pair \\ud83d\\ude00 kept"}}',
    ]
    body = f'{{"resourceLogs": [{{"scopeLogs": [{{"logRecords": [{",".join(records)}]}}]}}]}}'.encode()
    answer = post(service, body, "application/json")
    assert answer.status == 200, message(answer)
    lines = sorted(entry.line for entry in sink.entries)
    assert lines == ["bad \ufffd here", "first, intact", "pair \U0001f600 kept"]
    assert any(entry.metadata.get("k_") == "v" for entry in sink.entries)  # Loki: "k\ufffd" -> k_


def test_a_record_deeper_than_upb_allows_survives_the_413_split(sink: LokiSink) -> None:
    # Found by probing: the split after a 413 decoded the enriched request again with upb's own
    # limit, so a request the receiver had taken (49 nested arrays, ~100 levels) failed there
    # with DecodeError: UNAVAILABLE on every retry, and the plain record beside it never arrived.
    sink.script.append(Scripted(413, {}, b"<html>413 Request Entity Too Large</html>"))
    svc = Service(make_config(sink.url))
    svc.start()
    try:
        request = deep_request(40)
        plain = next(batches(events(), 4))
        request.resource_logs.extend(plain.resource_logs)
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            LogsServiceStub(channel).Export(request, timeout=20)
    finally:
        svc.stop(2)
    assert len(sink.entries) == 1 + 4  # the deep record and the four plain ones, after one split


def test_the_stdout_target_prints_a_record_deeper_than_upb_allows(capfd: pytest.CaptureFixture[str]) -> None:
    # Found by probing: the stdout forwarder decoded the enriched request again with upb's limit
    # (UNAVAILABLE "internal error: DecodeError" for a request the receiver had taken).
    svc = Service(make_config("stdout"))
    svc.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            LogsServiceStub(channel).Export(nested_arrays(49), timeout=20)
    finally:
        svc.stop(2)
    printed = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert len(printed) == 2 and "bottom" in json.dumps(printed)


def nested_arrays(levels: int) -> ExportLogsServiceRequest:
    """A plain record and one whose attribute nests arrays ``levels`` deep (2 message levels each)."""
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    scope.log_records.add().body.string_value = "plain"
    value = scope.log_records.add().attributes.add(key="a").value
    for _ in range(levels):
        value = value.array_value.values.add()
    value.string_value = "bottom"
    return request
