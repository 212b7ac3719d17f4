"""The gRPC and stdout targets, and the headers and credentials every target sends."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import (
    LogsServiceServicer,
    add_LogsServiceServicer_to_server,
)

from otelkv import config
from otelkv.commands.replay import batches
from otelkv.errors import Retryable
from otelkv.forward.http import classify, retry_after
from otelkv.forward.stdout import StdoutForwarder
from otelkv.forward.targets import make_forwarder
from tests.loki_sink import LokiSink
from tests.test_serve_grpc import events


@dataclass
class Recorder(LogsServiceServicer):
    """A real OTLP/gRPC server that records what it gets and answers what it is told."""

    received: list[tuple[ExportLogsServiceRequest, dict[str, str]]] = field(default_factory=list)
    answer: Any = None  # None: OK; a grpc.StatusCode; or an ExportLogsServiceResponse

    def Export(self, request: ExportLogsServiceRequest, context: grpc.ServicerContext) -> ExportLogsServiceResponse:
        self.received.append((request, dict(context.invocation_metadata())))  # type: ignore[arg-type]
        if isinstance(self.answer, ExportLogsServiceResponse):
            return self.answer
        if isinstance(self.answer, tuple):
            code, delay = self.answer
            status = status_pb2.Status(code=code.value[0], message="busy")
            if delay is not None:
                detail = any_pb2.Any()
                detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=delay)))
                status.details.append(detail)
            context.abort_with_status(rpc_status.to_status(status))
        return ExportLogsServiceResponse()


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = Recorder()
    add_LogsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(0)


def forward_config(endpoint: str, **kw: Any) -> config.ForwardConfig:
    return config.build(config.ForwardConfig, {"endpoint": endpoint, **kw}, "forward.")  # type: ignore[no-any-return]


def request() -> ExportLogsServiceRequest:
    return next(batches(events()[:4], 10))


def test_grpc_target_gets_the_request_with_tenant_and_headers(recorder: tuple[Recorder, int]) -> None:
    servicer, port = recorder
    fwd = make_forwarder(
        forward_config(f"grpc://127.0.0.1:{port}", tenant="kubevirt", headers={"X-Team": "vm"}),
        max_message_bytes=1 << 20,
    )
    try:
        assert fwd.send(request(), timeout=5).rejected == 0
    finally:
        fwd.close()
        fwd.close()
    got, metadata = servicer.received[0]
    assert got == request()
    assert metadata["x-scope-orgid"] == "kubevirt" and metadata["x-team"] == "vm"


@pytest.mark.parametrize(
    ("answer", "retry"),
    [
        ((grpc.StatusCode.UNAVAILABLE, 3), 3.0),
        ((grpc.StatusCode.RESOURCE_EXHAUSTED, 9), 9.0),
        ((grpc.StatusCode.DEADLINE_EXCEEDED, None), None),
    ],
)
def test_grpc_retryable_codes_keep_the_retry_hint(recorder: tuple[Recorder, int], answer: Any, retry: Any) -> None:
    servicer, port = recorder
    servicer.answer = answer
    fwd = make_forwarder(forward_config(f"grpc://127.0.0.1:{port}"), max_message_bytes=1 << 20)
    with pytest.raises(Retryable) as caught:
        fwd.send(request(), timeout=5)
    assert caught.value.retry_after == retry
    fwd.close()


def test_grpc_permanent_codes_and_partial_success_are_deliveries(recorder: tuple[Recorder, int]) -> None:
    servicer, port = recorder
    fwd = make_forwarder(forward_config(f"grpc://127.0.0.1:{port}"), max_message_bytes=1 << 20)
    servicer.answer = (grpc.StatusCode.INVALID_ARGUMENT, None)
    refused = fwd.send(request(), timeout=5)
    assert refused.rejected == 4 and "INVALID_ARGUMENT" in refused.message
    servicer.answer = (grpc.StatusCode.RESOURCE_EXHAUSTED, None)  # without RetryInfo: permanent
    assert fwd.send(request(), timeout=5).rejected == 4
    partial = ExportLogsServiceResponse()
    partial.partial_success.rejected_log_records = 1
    partial.partial_success.error_message = "one too old"
    servicer.answer = partial
    assert fwd.send(request(), timeout=5) == type(refused)(1, "one too old", "partial_success")
    fwd.close()


def test_grpc_target_down_is_retryable() -> None:
    fwd = make_forwarder(forward_config("grpc://127.0.0.1:1"), max_message_bytes=1 << 20)
    with pytest.raises(Retryable, match="UNAVAILABLE"):
        fwd.send(request(), timeout=2)
    fwd.close()


def test_stdout_writes_one_json_line_a_record() -> None:
    out = io.StringIO()
    StdoutForwarder(out).send(request(), timeout=1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 4
    assert lines[0]["resource"]["k8s.object.kind"] and lines[0]["time"].startswith("2026-11-20T")
    assert isinstance(lines[0]["body"], str)


def test_basic_auth_from_a_file_and_bearer_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = LokiSink().start()
    try:
        secret = tmp_path / "password"
        secret.write_text("s3cret\n")
        fwd = make_forwarder(
            forward_config(sink.url, tenant="t1", auth={"username": "otelkv", "password_file": str(secret)}),
            max_message_bytes=1 << 20,
        )
        fwd.send(request(), timeout=5)
        monkeypatch.setenv("LOKI_TOKEN", "tok")
        fwd2 = make_forwarder(
            forward_config(sink.url, tenant="t1", auth={"bearer_token_env": "LOKI_TOKEN"}), max_message_bytes=1 << 20
        )
        fwd2.send(request(), timeout=5)
    finally:
        sink.stop()
    basic, bearer = (h["Authorization"] for h in sink.requests)
    assert basic == "Basic " + base64.b64encode(b"otelkv:s3cret").decode()
    assert bearer == "Bearer tok"
    assert "s3cret" not in repr(fwd.__dict__.get("_url")) and "tok" not in fwd2.target


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (204, 0),
        (200, 0),
        (413, 7),
        (422, 7),
    ],
)
def test_http_classification_table(status: int, outcome: int) -> None:
    assert classify(status, {}, b"", 7, "u").rejected == outcome


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 401, 403, 404])
def test_http_retryable_statuses(status: int) -> None:
    with pytest.raises(Retryable, match=str(status)):
        classify(status, {"Retry-After": "4"}, b"x", 7, "u")


def test_retry_after_forms() -> None:
    assert retry_after("120") == 120.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after("soon") is None and retry_after(None) is None
