"""Memory is charged for what it really costs (issue 18 item 1 and the Python-path gap left open by
issue 13): requests are sent to a real ``otelkv serve`` child, whose peak RSS (VmHWM, from /proc)
is read before and after.

- The finding: a 4,144-byte gzip of OTLP/JSON with 1.4 million empty records took otelkv from 64
  to 665 MiB and was answered 503 (so a collector sent it again). It must be answered 413 (it can
  never fit) and cost a bounded amount.
- A protobuf request the compiled core leaves to the reference path (a record with a map body)
  was charged as if the core took it: it is now charged per record before the reference runs.
"""

from __future__ import annotations

import base64
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList

from otelkv.config import REQUEST_COST
from otelkv.errors import Retryable
from otelkv.pipeline import InflightBytes, Reservation
from otelkv.receive.body import INFLATE_COST, JSON_OBJECT_COST, declared_size, decode_json, gunzip
from otelkv.server import Service
from tests.loki_sink import LokiSink
from tests.otlp_requests import POOL
from tests.serve_child import ServeChild

HTTP = urllib3.PoolManager(retries=False)
MiB = 1024 * 1024


class Serving(ServeChild):
    """``otelkv serve`` with default limits, forwarding to ``sink``."""

    def __init__(self, tmp_path: Path, sink: LokiSink) -> None:
        config = tmp_path / "otelkv.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "grpc_listen": "127.0.0.1:0",
                    "http_listen": "127.0.0.1:0",
                    "forward": {"endpoint": sink.url, "tenant": "kubevirt", "timeout": 2},
                }
            )
        )
        super().__init__(config)
        self.http = f"http://127.0.0.1:{self.http_port}/v1/logs"

    def post(self, body: bytes, content_type: str, *, gzipped: bool = False) -> int:
        headers = {"Content-Type": content_type, **({"Content-Encoding": "gzip"} if gzipped else {})}
        return HTTP.request("POST", self.http, body=body, headers=headers, timeout=60).status


@pytest.fixture
def serving(tmp_path: Path, sink: LokiSink) -> Iterator[Serving]:
    child = Serving(tmp_path, sink)
    yield child
    child.stop()


def _good() -> bytes:
    return ExportLogsServiceRequest(resource_logs=POOL[:3]).SerializeToString()


@pytest.mark.hostile
def test_a_small_gzip_of_a_million_empty_json_records_is_refused_413_at_a_bounded_cost(
    serving: Serving, sink: LokiSink
) -> None:
    flood = ('{"resourceLogs":[{"scopeLogs":[{"logRecords":[' + ",".join(["{}"] * 1_398_017) + "]}]}]}").encode()
    small = gzip.compress(flood, 9)
    assert len(small) < 8 * 1024 and len(flood) <= 4 * MiB
    before = serving.status("VmHWM")
    for _ in range(3):  # a client that retries: still refused, still bounded
        assert serving.post(small, "application/json", gzipped=True) == 413
    grown = serving.status("VmHWM") - before
    assert grown < 100 * MiB, f"peak grew {grown / MiB:.0f} MiB (665 MiB before the fix)"
    assert serving.post(_good(), "application/x-protobuf") == 200
    assert sink.requests, "the good request after the flood was forwarded"


def _map_body_records(count: int) -> bytes:
    """Records with a map body (the k8sobjects shape), which the compiled core leaves to the reference."""
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    body = AnyValue(kvlist_value=KeyValueList())
    for _ in range(count):
        scope.log_records.add().body.CopyFrom(body)
    return request.SerializeToString()


def test_the_reference_path_is_charged_per_record_before_it_runs(serving: Serving) -> None:
    """150,000 records of an empty map body are 1 MiB, charged 128 bytes a message (58 MiB, under
    the default cap of 64 MiB), but the reference path takes ~470 bytes more a record (126 MiB in
    all): charged before it runs, refused as too large (it can never fit the default cap)."""
    payload = _map_body_records(150_000)
    assert len(payload) < 2 * MiB
    before = serving.status("VmHWM")
    assert serving.post(payload, "application/x-protobuf") == 413
    assert serving.status("VmHWM") - before < 90 * MiB
    assert serving.post(_good(), "application/x-protobuf") == 200


class _Budget:
    """A charge that records what it was asked for, refusing past ``limit`` like a Reservation."""

    def __init__(self, limit: int) -> None:
        self.limit, self.total = limit, 0

    def add(self, size: int) -> None:
        self.total += size
        if self.total > self.limit:
            raise OverflowError(self.total)

    def ahead(self, size: int) -> None:
        self.add(size)


def test_json_objects_are_charged_while_they_are_parsed() -> None:
    body = ('{"resourceLogs":[{"scopeLogs":[{"logRecords":[' + ",".join(["{}"] * 50_000) + "]}]}]}").encode()
    budget = _Budget(limit=2**62)
    request = decode_json(body, budget)
    assert len(request.resource_logs[0].scope_logs[0].log_records) == 50_000
    assert budget.total >= (50_000 + 3) * JSON_OBJECT_COST  # every object, the rounding step included
    stopped = _Budget(limit=1 * MiB)
    with pytest.raises(OverflowError):  # parsing stops at the cap, long before 50,000 objects
        decode_json(body, stopped)
    assert stopped.total < 1 * MiB + 1024 * JSON_OBJECT_COST


def test_the_gzip_trailer_declares_what_is_charged_first() -> None:
    one, two = gzip.compress(b"a" * 5000), gzip.compress(b"b" * 300)
    assert declared_size(one, 10_000) == 5000
    assert declared_size(one, 4999) == 0  # more than the limit: refused as too large when inflated
    assert declared_size(one + two, 10_000) == 300  # the last member's: the rest is charged step by step
    assert declared_size(b"x" * 40, 10_000) == declared_size(one[:17], 10_000) == 0  # not gzip, too short
    # Found by probing: a 41-byte body whose trailer says 4 MiB held ~40 MiB of the cap until zlib
    # refused it, so a flood of them made honest requests busy (503). Deflate makes at most 1032x.
    lie = gzip.compress(b"a")[:-4] + (4 * MiB).to_bytes(4, "little")
    assert declared_size(lie, 4 * MiB) == 1032 * len(lie)
    bomb = gzip.compress(b"\0" * (4 * MiB))  # a real bomb still declares all it inflates to
    assert declared_size(bomb, 4 * MiB) == 4 * MiB


def test_a_gzip_body_is_charged_ahead_and_refused_before_it_is_inflated() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB that gzip does not make tiny
    body = gzip.compress(payload)
    full = InflightBytes(INFLATE_COST * len(payload))
    Reservation(full).add(1)  # another request holds a byte: this one does not fit now
    with pytest.raises(Retryable):
        gunzip(body, 4 * MiB, Reservation(full))
    assert full.peak == 1  # refused on what the trailer declares: not one chunk inflated
    inflight = InflightBytes(2**40)
    reservation = Reservation(inflight)
    assert gunzip(body, 4 * MiB, reservation) == payload
    assert inflight.charged == INFLATE_COST * len(payload)  # the chunks and the copy drew on it
    assert reservation.credit == (INFLATE_COST - 2) * len(payload)  # decoding's share, for the next step
    several = Reservation(InflightBytes(2**40))
    assert gunzip(body + gzip.compress(b"z" * 10), 4 * MiB, several) == payload + b"z" * 10
    assert several.charged >= 2 * len(payload)  # the understated first member charged step by step


def test_json_nested_deeper_than_the_parser_allows_is_malformed_not_an_internal_error(service: Service) -> None:
    deep = ("[" * 5000 + "]" * 5000).encode()
    answer = HTTP.request(
        "POST",
        f"http://127.0.0.1:{service.http_port}/v1/logs",
        body=b'{"resourceLogs":' + deep + b"}",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status == 400 and b"nested" in answer.data


def _fat_resource_over_many_namespaces(records: int, attributes: int = 300) -> bytes:
    """One KubeVirt resource of ``attributes`` 100-byte attributes over ``records`` records, each in a
    namespace of its own (the adversarial probe's shape: 1.2 MB)."""

    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(
        [kv("k8s.object.kind", "VirtualMachineInstance"), kv("k8s.object.name", "vm")]
    )
    resource_logs.resource.attributes.extend(kv(f"r{j}", "x" * 100) for j in range(attributes))
    scope = resource_logs.scope_logs.add()
    for i in range(records):
        scope.log_records.add().attributes.extend([kv("k8s.namespace.name", f"n{i}"), kv("k8s.event.uid", f"fat-{i}")])
    return request.SerializeToString()


@pytest.mark.hostile
def test_a_fat_resource_over_many_namespaces_costs_what_it_is_charged(serving: Serving) -> None:
    """The adversarial probe of this round: the compiled core copied the whole resource (300
    attributes) into every record's view before the copy cap refused the request: one 1.2 MB request
    took VmHWM to 211 MiB, 16 at once to 395 MiB. The view takes only what the reader reads now."""
    payload = _fat_resource_over_many_namespaces(20_000)
    assert len(payload) < 2 * MiB
    before = serving.status("VmHWM")
    for _ in range(3):
        assert serving.post(payload, "application/x-protobuf") == 413  # the copy cap: one resource per namespace
    grown = serving.status("VmHWM") - before
    assert grown < 60 * MiB, f"peak grew {grown / MiB:.0f} MiB (211 MiB before the fix)"
    assert serving.post(_good(), "application/x-protobuf") == 200


def _many_scopes(count: int) -> bytes:
    """One KubeVirt resource with ``count`` scopes of one record each (3.2 MB for 100,000)."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(
        KeyValue(key="k8s.object.kind", value=AnyValue(string_value="VirtualMachineInstance"))
    )
    for i in range(count):
        resource_logs.scope_logs.add().log_records.add().attributes.append(
            KeyValue(key="k8s.event.uid", value=AnyValue(string_value=f"s{i}"))
        )
    return request.SerializeToString()


@pytest.mark.hostile
def test_many_one_record_scopes_are_charged_alike_on_both_cores(serving: Serving) -> None:
    """The probe: accepted by the compiled core at a 220 MiB peak (charged 54 MB), refused as too
    large by the reference path. Enriching is charged per record on both: the same answer, bounded."""
    payload = _many_scopes(100_000)
    before = serving.status("VmHWM")
    assert serving.post(payload, "application/x-protobuf") == 413
    assert serving.status("VmHWM") - before < 90 * MiB
    assert serving.post(_good(), "application/x-protobuf") == 200


def test_the_client_is_never_told_more_records_were_rejected_than_it_sent() -> None:
    """The probe: with Loki answering 413, the partial success counted the summary records otelkv
    added (1 record sent, 2 rejected; 1,000 sent, 1,936 rejected)."""
    from otelkv.forward import Delivery  # noqa: PLC0415
    from otelkv.otlp.enrichment import EnrichResult  # noqa: PLC0415
    from otelkv.pipeline.export import _as_answered  # noqa: PLC0415

    result = EnrichResult(received=1000, enriched=1000, summaries=936)
    assert _as_answered(Delivery(1936, "413"), result).rejected == 1000
    assert _as_answered(Delivery(30, "400"), result).rejected == 30


@pytest.mark.parametrize(("gzipped", "content"), [(False, "text"), (True, "text"), (True, "dense")])
def test_the_smallest_cap_start_up_allows_takes_a_request_of_max_message_bytes(
    tmp_path: Path, sink: LokiSink, gzipped: bool, content: str
) -> None:
    """``delivery.max_inflight_bytes`` at its minimum (``REQUEST_COST`` x ``max_message_bytes``)
    takes one request as large as ``max_message_bytes`` alone, gzip'ed or not: the start-up check
    promises it. At 10 x, a gzip'ed one was refused 413 (wire bytes, inflated bytes, their copies
    and decoding cost ~12 x)."""
    limit = MiB
    request = ExportLogsServiceRequest(resource_logs=[POOL[0]])
    body_value = request.resource_logs[0].scope_logs[0].log_records[0].body
    if content == "text":  # ~1 MiB that gzip halves
        body_value.string_value = os.urandom(limit // 2).hex()[: limit - 4096]
    else:  # ~1 MiB of base64 text gzip shrinks by a quarter at best
        body_value.string_value = base64.b64encode(os.urandom(limit))[: limit - 4096].decode()
    payload = request.SerializeToString()
    assert limit - 8192 < len(payload) <= limit
    config = tmp_path / "otelkv.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "grpc_listen": "127.0.0.1:0",
                "http_listen": "127.0.0.1:0",
                "max_message_bytes": limit,
                "delivery": {"max_inflight_bytes": REQUEST_COST * limit},
                "forward": {"endpoint": sink.url, "tenant": "kubevirt", "timeout": 2},
            }
        )
    )
    child = ServeChild(config)
    try:
        url = f"http://127.0.0.1:{child.http_port}/v1/logs"
        body = gzip.compress(payload) if gzipped else payload
        headers = {"Content-Type": "application/x-protobuf", **({"Content-Encoding": "gzip"} if gzipped else {})}
        answer = HTTP.request("POST", url, body=body, headers=headers, timeout=60)
        assert answer.status == 200, (answer.status, answer.data[:300])
    finally:
        child.stop()
