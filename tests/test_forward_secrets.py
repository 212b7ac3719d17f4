"""What otelkv's clients hear about a failing target (issue 9, item 5, second half): the target's
URL without credentials, its status and words — never a credential or a header value, even when
the target echoes one back."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
import urllib3
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import (
    LogsServiceStub,
    add_LogsServiceServicer_to_server,
)

from otelkv.errors import Retryable
from otelkv.forward import Redactor
from otelkv.forward.http import classify, shown_url
from otelkv.forward.targets import make_forwarder
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.reliability import numbered_events, requests_of
from tests.test_forward_targets import Recorder, forward_config, request

SECRETS = ("s3cr3t-key", "tok-123")
ECHO = b"invalid key s3cr3t-key for Bearer tok-123"


@pytest.fixture
def leaky(sink: LokiSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """otelkv in sync mode with every kind of credential, in front of a target that echoes them."""
    monkeypatch.setenv("LOKI_TOKEN", "tok-123")
    # (userinfo in the URL is refused at configuration time; basic auth is tested below)
    svc = Service(
        make_config(
            sink.url, **{"forward.headers": {"X-Api-Key": "s3cr3t-key"}, "forward.auth.bearer_token_env": "LOKI_TOKEN"}
        )
    )
    svc.start()
    yield svc
    svc.stop(5)


def clean(text: str) -> bool:
    return not [s for s in SECRETS if s in text]


def test_unavailable_details_and_503_bodies_name_the_url_never_a_secret(sink: LokiSink, leaky: Service) -> None:
    sink.script.extend([Scripted(401, {}, ECHO), Scripted(401, {}, ECHO)])
    batch = requests_of(numbered_events(5, "leak"), 5)[0]
    with grpc.insecure_channel(f"127.0.0.1:{leaky.grpc_port}") as channel, pytest.raises(grpc.RpcError) as caught:
        LogsServiceStub(channel).Export(batch, timeout=5)
    assert isinstance(caught.value, grpc.Call)
    details = caught.value.details() or ""
    assert f"http://127.0.0.1:{sink.port}/otlp/v1/logs answered 401" in details and "<redacted>" in details
    assert clean(details), details
    answer = urllib3.PoolManager(retries=False).request(
        "POST",
        f"http://127.0.0.1:{leaky.http_port}/v1/logs",
        body=batch.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert answer.status == 503
    message = status_pb2.Status.FromString(answer.data).message
    assert "answered 401" in message and clean(message), message


def test_a_refusal_echoing_a_secret_is_redacted_in_the_partial_success(sink: LokiSink, leaky: Service) -> None:
    sink.script.append(Scripted(400, {}, ECHO))
    with grpc.insecure_channel(f"127.0.0.1:{leaky.grpc_port}") as channel:
        answer = LogsServiceStub(channel).Export(requests_of(numbered_events(5, "leak400"), 5)[0], timeout=5)
    message = answer.partial_success.error_message
    assert answer.partial_success.rejected_log_records == 5 and "answered 400" in message and clean(message)


@pytest.fixture
def echoing() -> Iterator[int]:
    """A gRPC target that refuses every call with details repeating the metadata it got."""

    class Echo(Recorder):
        def Export(self, request: object, context: grpc.ServicerContext) -> object:  # type: ignore[override]
            seen = ", ".join(f"{k}={v!s}" for k, v in context.invocation_metadata())
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"refused: {seen}")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_LogsServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


def test_grpc_details_echoing_metadata_are_redacted(echoing: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOKI_TOKEN", "tok-123")
    forwarder = make_forwarder(
        forward_config(
            f"grpc://127.0.0.1:{echoing}",
            tenant="kubevirt",
            headers={"X-Api-Key": "s3cr3t-key"},
            auth={"bearer_token_env": "LOKI_TOKEN"},
        ),
        max_message_bytes=1 << 20,
    )
    try:
        with pytest.raises(Retryable) as caught:
            forwarder.send(request(), timeout=5)
    finally:
        forwarder.close()
    message = str(caught.value)
    assert "x-scope-orgid=kubevirt" in message and clean(message), message  # the tenant is no secret


def test_basic_auth_password_is_redacted_too() -> None:
    redact = Redactor(
        {"Authorization": "Basic " + base64.b64encode(b"otelkv:hunter2").decode(), "X-Scope-OrgID": "kubevirt"}
    )
    assert redact("bad password hunter2 for tenant kubevirt") == "bad password <redacted> for tenant kubevirt"


def test_shown_url_drops_credentials_and_query() -> None:
    assert shown_url("https://u:p@loki:443/otlp/v1/logs?token=abc#x") == "https://loki:443/otlp/v1/logs"
    assert shown_url("http://loki/otlp/v1/logs") == "http://loki/otlp/v1/logs"
    assert os.path.basename(shown_url("http://@loki/otlp")) == "otlp"


@pytest.mark.parametrize("status", [401, 400, 404])
def test_a_secret_at_the_cut_is_redacted_whole(status: int) -> None:
    # Found by probing: the answer was cut to 300 characters before redaction, leaving the head
    # of a key straddling the cut ("…xxxsupersecre") in client answers, logs and dead letters.
    redact = Redactor({"X-Api-Key": "supersecretkey-0123456789"})
    body = b"x" * 290 + b" supersecretkey-0123456789 and more"
    try:
        delivery = classify(status, {}, body, 3, "http://loki/otlp/v1/logs", redact=redact)
        message = delivery.message
    except Retryable as error:
        message = str(error)
    assert "supersec" not in message and "<redacted" in message  # (the marker itself may be cut)
