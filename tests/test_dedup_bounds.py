"""The duplicate window holds keys of a bounded size (issue 18: every cache bounded in bytes).

A record's key is its event uid and count; a Kubernetes uid is 36 characters, so a uid (or a count
text) longer than ``MAX_KEY_BYTES`` is not used as a key: such records are not deduplicated, on
the compiled core and the reference path alike (before, 50,000 keys of 20 KB uids could hold 1 GB).
"""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from otelkv.kubevirt import MigrationTracker
from otelkv.otlp import native
from otelkv.otlp.enrich import EnrichOptions, EnrichResult, enrich
from otelkv.otlp.record_keys import MAX_KEY_BYTES
from otelkv.otlp.wire import enrich_wire
from tests.otlp_requests import POOL


def _twice(uid: str, count: AnyValue | None = None) -> bytes:
    """The same KubeVirt event record twice in one request, with ``uid`` (and ``count``)."""
    request = ExportLogsServiceRequest()
    for _ in range(2):
        copy = request.resource_logs.add()
        copy.CopyFrom(POOL[0])
        record = copy.scope_logs[0].log_records[0]
        kept = [kv for kv in record.attributes if kv.key not in ("k8s.event.uid", "k8s.event.count")]
        del record.attributes[:]
        record.attributes.extend(kept)
        record.attributes.append(KeyValue(key="k8s.event.uid", value=AnyValue(string_value=uid)))
        if count is not None:
            record.attributes.append(KeyValue(key="k8s.event.count", value=count))
    return request.SerializeToString()


def _both(payload: bytes) -> list[EnrichResult]:
    results = [
        enrich(ExportLogsServiceRequest.FromString(payload), MigrationTracker(), EnrichOptions(), set().__contains__)
    ]
    core = native.core()
    if core is not None:
        found = enrich_wire(payload, MigrationTracker(), EnrichOptions(), set().__contains__, core=core)
        assert found is not None
        results.append(found)
    return results


def _keys(result: EnrichResult) -> list[Hashable]:
    return [k for k in result.keys if not (isinstance(k, tuple) and k and k[0] == "summary")]


@pytest.mark.parametrize(
    ("uid", "count", "deduplicated"),
    [
        ("6f1c2d3e-0000-4000-8000-00000000aa01", None, True),
        ("u" * MAX_KEY_BYTES, None, True),
        ("u" * (MAX_KEY_BYTES + 1), None, False),
        ("é" * (MAX_KEY_BYTES // 2 + 1), None, False),  # 66 bytes of UTF-8 in 33 characters
        ("uid", AnyValue(int_value=3), True),
        ("uid", AnyValue(string_value="c" * (MAX_KEY_BYTES + 1)), False),
    ],
)
def test_only_keys_of_a_bounded_size_are_remembered(
    core: native.Choice, uid: str, count: AnyValue | None, deduplicated: bool
) -> None:
    for result in _both(_twice(uid, count)):
        assert result.duplicates == (1 if deduplicated else 0)
        assert all(len(repr(k)) < 4 * MAX_KEY_BYTES + 32 for k in _keys(result))
    first, *others = _both(_twice(uid, count))
    for other in others:
        assert other.payload == first.payload and other.keys == first.keys
