"""Request bodies that are odd or hostile: every gzip member, trailing bytes, deep JSON (issue 8
items 6 and 8, receive side)."""

from __future__ import annotations

import gzip
import json

import pytest
import urllib3
from google.rpc import status_pb2

from otelkv.replay import batches
from otelkv.server import Service
from tests.loki_sink import LokiSink
from tests.test_serve_grpc import events

HTTP = urllib3.PoolManager(retries=False)


def post(service: Service, body: bytes, content_type: str = "application/x-protobuf",
         **headers: str) -> urllib3.BaseHTTPResponse:  # fmt: skip
    return HTTP.request("POST", f"http://127.0.0.1:{service.http_port}/v1/logs", body=body,
                        headers={"Content-Type": content_type, **headers}, timeout=10)  # fmt: skip


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


@pytest.mark.parametrize(("tail", "named"), [
    (b"garbage", "bytes after the gzip stream"),
    (b"\x1f\x8b\x08\x00garbage", "not valid gzip"),
])  # fmt: skip
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


@pytest.mark.parametrize("body", [
    nested_kvlist(300),
    b'{"resourceLogs": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    b"[" * 100_000,
])  # fmt: skip
def test_deep_json_is_400_not_retryable(sink: LokiSink, service: Service, body: bytes) -> None:
    answer = post(service, body, "application/json")
    assert answer.status == 400 and "nested" in message(answer)
    assert sink.requests == []


def test_json_with_30_kvlist_levels_is_taken(sink: LokiSink, service: Service) -> None:
    answer = post(service, nested_kvlist(30), "application/json")
    assert answer.status == 200, message(answer)
    assert len(sink.entries) == 1
