"""A request is charged by the messages decoding makes, where that is more than 8x its size: a
request of tiny messages (2,000,000 empty records fit in 4 MiB; upb takes ~123 bytes each) used
to be charged 8x its bytes and could take far more memory than the in-flight cap allows — past a
192 Mi container limit, one request was an OOM kill. The compiled core counts the messages before
anything is decoded."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from otelkv.otlp import native
from otelkv.receive.charge import DECODE_COST, MESSAGE_COST, decode_charge
from tests.conftest import compiled_core
from tests.loki_sink import LokiSink
from tests.migration_objects import any_value
from tests.otlp_requests import resource_logs, seldom
from tests.test_serve_limits import grpc_export, http_export, started


def messages(message: Message) -> int:
    """How many messages ``message`` holds, itself included (what upb allocates one for)."""
    count = 1
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for child in value if field.is_repeated else [value]:
            count += messages(child)
    return count


@pytest.fixture(scope="module")
def core() -> Iterator[native.Choice]:
    chosen = compiled_core()
    previous = native.select(chosen)
    yield chosen
    native.select(previous)


@given(st.lists(resource_logs(other_kind=seldom), max_size=5))
def test_the_core_counts_the_messages_upb_decodes(core: native.Choice, resources: list[ResourceLogs]) -> None:
    request = ExportLogsServiceRequest(resource_logs=resources)
    for rl in request.resource_logs[:1]:  # and values nested in lists and maps
        rl.scope_logs.add().log_records.add().body.CopyFrom(any_value({"a": [1, {"b": [2, 3]}], "c": "d"}))
    assert core.module is not None
    assert core.module.count_messages(request.SerializeToString()) == messages(request)


def test_malformed_or_cut_bytes_count_as_unknown(core: native.Choice) -> None:
    assert core.module is not None
    assert core.module.count_messages(b"\x0a\x05") == -1
    assert core.module.count_messages(b"") == 1  # an empty request: the request itself
    deep = ExportLogsServiceRequest()
    value = deep.resource_logs.add().scope_logs.add().log_records.add().body
    for _ in range(300):
        value = value.array_value.values.add()
    assert core.module.count_messages(deep.SerializeToString()) == -1  # deeper than the walk goes


def flood(records: int) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for _ in range(records):
        scope.log_records.add()
    return request


def test_the_charge_is_the_larger_of_size_and_messages(core: native.Choice) -> None:
    payload = flood(10_000).SerializeToString()
    assert decode_charge(payload) == MESSAGE_COST * (10_000 + 3) > DECODE_COST * len(payload)
    one = ExportLogsServiceRequest()
    one.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "x" * 1000
    assert decode_charge(one.SerializeToString()) == DECODE_COST * one.ByteSize()  # size decides
    previous = native.select(native.Choice(module=None, reason="the reference path"))
    try:
        assert decode_charge(payload) == DECODE_COST * len(payload)  # no core: by size alone
    finally:
        native.select(previous)


def test_a_flood_of_empty_records_is_refused_before_it_is_decoded(core: native.Choice, sink: LokiSink) -> None:
    """600,000 empty records (1.2 MB; ~77 MB once decoded) against the default 64 MiB cap: too
    large, on both receivers, and nothing reaches the target."""
    svc = started(sink)
    try:
        request = flood(600_000)
        assert grpc_export(svc, request) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert http_export(svc, request.SerializeToString()).status == 413
        assert sink.select() == []
        assert svc.pipeline.inflight.charged == 0
        assert grpc_export(svc, flood(1_000)) == grpc.StatusCode.OK  # a small one still goes through
    finally:
        svc.stop(1)
