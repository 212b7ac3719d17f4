"""The OTLP/HTTP receiver and the HTTP endpoints: /v1/logs, /healthz, /readyz, /metrics."""

from __future__ import annotations

import gzip
import json
import socket
import time

import pytest
import urllib3
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from otelkv.commands.replay import batches
from otelkv.otlp import native
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.test_serve_grpc import events

HTTP = urllib3.PoolManager(retries=False)


def url(service: Service, path: str) -> str:
    return f"http://127.0.0.1:{service.http_port}{path}"


def post(
    service: Service,
    body: bytes,
    content_type: str = "application/x-protobuf",
    encoding: str | None = "gzip",
    **headers: str,
) -> urllib3.BaseHTTPResponse:
    if encoding == "gzip":
        body = gzip.compress(body)
    if encoding:
        headers["Content-Encoding"] = encoding
    return HTTP.request(
        "POST", url(service, "/v1/logs"), body=body, headers={"Content-Type": content_type, **headers}, timeout=10
    )


def first_request() -> bytes:
    body: bytes = next(batches(events(), 100)).SerializeToString()
    return body


def test_protobuf_gzip_is_forwarded_and_answered_in_protobuf(
    core: native.Choice, sink: LokiSink, service: Service
) -> None:
    answer = post(service, first_request())
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(answer.data).HasField("partial_success")
    assert len(sink.select(service_name="kubevirt-events")) == len(events()) - 2


def test_json_is_accepted_and_answered_in_json(sink: LokiSink, service: Service) -> None:
    request = next(batches(events()[:3], 100))
    body = json_format.MessageToJson(request).encode()
    answer = post(service, body, "application/json", None)
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.data) == {}
    assert len(sink.entries) == 3


def test_wrong_content_type_is_415(sink: LokiSink, service: Service) -> None:
    answer = post(service, first_request(), "text/plain")
    assert answer.status == 415
    assert "Content-Type must be" in status_pb2.Status.FromString(answer.data).message
    assert sink.requests == []


def test_a_bad_content_length_is_400(service: Service) -> None:
    with socket.create_connection(("127.0.0.1", service.http_port), timeout=5) as raw:
        raw.sendall(b"POST /v1/logs HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: abc\r\n\r\n")
        assert raw.recv(100).split(b" ")[1] == b"400"


def test_unknown_encoding_is_415(service: Service) -> None:
    assert post(service, first_request(), encoding="br").status == 415


@pytest.mark.parametrize(
    ("body", "encoding", "named"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f", None, "malformed ExportLogsServiceRequest"),
        (b"not gzip at all", "identity-but-says-gzip", "not valid gzip"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(
    service: Service, body: bytes, encoding: str | None, named: str
) -> None:
    if encoding == "identity-but-says-gzip":
        answer = post(service, body, encoding=None, **{"Content-Encoding": "gzip"})
    else:
        answer = post(service, body, encoding=encoding)
    assert answer.status == 400
    assert named in status_pb2.Status.FromString(answer.data).message


def test_bad_json_is_400(service: Service) -> None:
    answer = post(service, b'{"resourceLogs": "nope"}', "application/json", None)
    assert answer.status == 400
    assert "OTLP/JSON" in json.loads(answer.data)["message"]


def test_oversized_and_gzip_bombs_are_413_naming_the_limit(sink: LokiSink) -> None:
    small = Service(make_config(sink.url, max_message_bytes=8192))
    small.start()
    try:
        big = post(small, b"\x00" * 9000, encoding=None)
        assert big.status == 413 and "8192" in status_pb2.Status.FromString(big.data).message
        bomb = post(small, b"\x00" * 1_000_000)  # 1 MB of zeros, 1 kB gzip'ed
        assert bomb.status == 413
        assert "decompressed body exceeds max_message_bytes 8192" in status_pb2.Status.FromString(bomb.data).message
        assert HTTP.request("GET", url(small, "/healthz")).status == 200  # still serving
    finally:
        small.stop(1)


def test_target_trouble_is_503_with_retry_after(sink: LokiSink, service: Service) -> None:
    sink.script.append(Scripted(429, {"Retry-After": "12"}))
    answer = post(service, first_request())
    assert answer.status == 503 and answer.headers["Retry-After"] == "12"
    sink.stop()
    answer = post(service, first_request())
    assert answer.status == 503 and answer.headers["Retry-After"] == "1"


def test_loki_400_is_a_partial_success(sink: LokiSink, service: Service) -> None:
    sink.reject_older_than = 2**63 - 1  # every entry too old
    answer = post(service, first_request())
    assert answer.status == 200
    partial = ExportLogsServiceResponse.FromString(answer.data).partial_success
    assert partial.rejected_log_records == len(events()) and "total ignored" in partial.error_message


def test_health_and_readiness(sink: LokiSink) -> None:
    svc = Service(make_config(sink.url, unready_after_failing_seconds=0.2))
    svc.start()
    try:
        assert HTTP.request("GET", url(svc, "/healthz")).status == 200
        assert HTTP.request("GET", url(svc, "/readyz")).status == 200
        sink.stop()
        post(svc, first_request())
        time.sleep(0.25)
        post(svc, first_request())
        ready = HTTP.request("GET", url(svc, "/readyz"))
        assert ready.status == 503 and b"target failing" in ready.data
        time.sleep(0.25)  # no failure for unready_after: ready again, so traffic can find out
        assert HTTP.request("GET", url(svc, "/readyz")).status == 200
        svc.pipeline.health.draining = True
        assert HTTP.request("GET", url(svc, "/readyz")).data == b"draining\n"
        assert HTTP.request("GET", url(svc, "/healthz")).status == 200  # alive while draining
    finally:
        svc.stop(1)


def test_metrics_count_what_happened(sink: LokiSink, service: Service) -> None:
    body = first_request()
    post(service, body)
    post(service, body)  # all duplicates now
    sink.script.append(Scripted(503))
    bumped = {**events()[0], "count": 99}  # a new occurrence of the event: not a duplicate
    assert post(service, next(batches([bumped], 1)).SerializeToString(), encoding=None).status == 503
    text = HTTP.request("GET", url(service, "/metrics")).data.decode()
    n = len(events())

    def value(name: str) -> float:  # summed over label values (error.type)
        lines = [line for line in text.splitlines() if line.startswith((name + "{", name + " "))]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    assert value("otelkv_records_received_total") == 2 * n + 1
    assert value("otelkv_records_enriched_total") == n - 2 + 1  # the Pod and Node events are not
    assert value("otelkv_records_duplicates_total") == n
    assert value("otelkv_records_forwarded_total") == n
    assert value("otelkv_records_failed_total") == 1
    post(service, b"garbage", "text/plain")
    text = HTTP.request("GET", url(service, "/metrics")).data.decode()
    assert value("otelkv_requests_invalid_total") == 1
    assert "otelkv_forward_duration_seconds_bucket" in text


def test_unknown_paths_are_404(service: Service) -> None:
    assert HTTP.request("GET", url(service, "/nope")).status == 404
    assert HTTP.request("POST", url(service, "/v1/traces"), body=b"").status == 404


def test_garbage_and_cut_connections_do_not_stop_the_server(service: Service) -> None:
    for payload in (
        b"\x00\xff\xfe not http at all\r\n\r\n",
        b"POST /v1/logs HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\nabc",
    ):
        with socket.create_connection(("127.0.0.1", service.http_port), timeout=5) as raw:
            raw.sendall(payload)  # and hang up before the body is complete
    assert HTTP.request("GET", url(service, "/healthz")).status == 200
    assert post(service, first_request()).status == 200


def test_a_handler_that_fails_answers_503_and_logs_at_error(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Found in review: an exception in a handler (here /readyz) became aiohttp's 500, logged at
    # debug only. Now a retryable 503, and an error line naming the path.
    def broken() -> tuple[bool, str]:
        raise RuntimeError("health is broken")

    monkeypatch.setattr(service.pipeline.health, "ready", broken)
    answer = urllib3.request("GET", url(service, "/readyz"), retries=False, timeout=10)
    assert answer.status == 503 and answer.headers["Retry-After"] == "1"
    assert "GET /readyz failed: RuntimeError('health is broken')" in caplog.text
