"""Hostile protobuf bodies through a real ``otelkv serve``, on each enrichment core (issue 13): a
request built to make enrichment copy its resource once per namespace is refused as too large,
nothing of it forwarded; mutated requests are answered (taken or refused as bad), and the
server answers a good request after all of them."""

from __future__ import annotations

import random

import grpc
import urllib3
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.otlp import native
from otelkv.server import Service
from tests.loki_sink import LokiSink
from tests.otlp_requests import EVENTS, POOL
from tests.test_enrich_native_hostile import _amplifying

HTTP = urllib3.PoolManager(retries=False)
SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def _grpc(service: Service, body: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/Export")
        try:
            raw(body, timeout=30)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()  # grpcio's RpcError is also a grpc.Call
            return code
    return grpc.StatusCode.OK


def _http(service: Service, body: bytes) -> int:
    answer = HTTP.request(
        "POST",
        f"http://127.0.0.1:{service.http_port}/v1/logs",
        body=body,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    return answer.status


def test_a_request_that_would_copy_its_resource_per_namespace_is_too_large(
    core: native.Choice, sink: LokiSink, service: Service
) -> None:
    body = _amplifying(50)
    assert _grpc(service, body) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _http(service, body) == 413
    assert not sink.requests
    good = ExportLogsServiceRequest(resource_logs=POOL[:3]).SerializeToString()
    assert (_grpc(service, good), _http(service, good)) == (grpc.StatusCode.OK, 200)


def test_mutated_requests_are_answered_and_the_server_stays_up(
    core: native.Choice, sink: LokiSink, service: Service
) -> None:
    rng = random.Random(13)
    plain = ExportLogsServiceRequest(resource_logs=POOL[: len(EVENTS)]).SerializeToString()
    answers: set[grpc.StatusCode | int] = set()
    for _ in range(40):
        body = bytearray(plain)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(body))
            body[at] ^= 1 << rng.randrange(8)
        answers.add(_grpc(service, bytes(body)))
        answers.add(_http(service, bytes(body)))
    assert answers <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, 200, 400}
    assert (_grpc(service, plain), _http(service, plain)) == (grpc.StatusCode.OK, 200)
