"""Records that are not KubeVirt events take a short path through enrich() (issue 13 item 3).

A differential test: on generated requests — KubeVirt and other events, migration objects, map
bodies under other kinds, duplicates, empty scopes, several scopes and records a resource, odd
attribute types, repeated keys, schema URLs, unset scopes and resources, unknown fields, records
delivered before — the short path and the
reference path (``pass_through=False``) give the same request, byte for byte, and the same counts
and keys.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otelkv.eventfile import in_time_order
from otelkv.kubevirt import MigrationTracker
from otelkv.otlp.attributes import to_dict
from otelkv.otlp.enrich import EnrichOptions, EnrichResult, _key, enrich
from otelkv.otlp.k8s_events import to_resource_logs
from tests.conftest import EXAMPLE
from tests.migration_objects import any_value, object_record, vmim

_EVENTS = in_time_order(json.loads(EXAMPLE.read_text())["items"])
#: Resources as they come: every example event (VMI, VMIM, Pod, Node), two migration objects, an
#: application log without any kind.
_POOL = [to_resource_logs(e) for e in _EVENTS] + [
    object_record(vmim("Running", t=5)),
    object_record(vmim("Succeeded", t=9), watch_type=None),
    ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(body=AnyValue(string_value="GET /healthz 200"))])]),
]
_UIDS = sorted({e["metadata"]["uid"] for e in _EVENTS})[:3]


def _attribute(draw: st.DrawFn) -> tuple[str, AnyValue]:
    key = draw(st.sampled_from(["k8s.event.uid", "k8s.event.count", "k8s.object.kind", "service.name", "x"]))
    value = draw(st.one_of(st.sampled_from(["", "Pod", "VirtualMachineInstance", *_UIDS]),
                           st.integers(-2, 3), st.booleans(), st.just([1]), st.just({"a": "b"})))  # fmt: skip
    return key, any_value(value)


#: True one time in four: for the changes that take a ResourceLogs off the short path.
_seldom = st.integers(0, 3).map(lambda n: n == 3)


@st.composite
def resource_logs(draw: st.DrawFn) -> ResourceLogs:
    """One received ResourceLogs: a pooled one, often changed."""
    out = ResourceLogs()
    out.CopyFrom(draw(st.sampled_from(_POOL)))
    for _ in range(draw(st.integers(0, 2))):  # more records of the same resource (another pooled one's)
        extra = draw(st.sampled_from(_POOL)).scope_logs[0]
        target = out.scope_logs.add() if draw(st.booleans()) else out.scope_logs[0]
        target.log_records.extend(extra.log_records)
    if not draw(_seldom):  # made another kind's event: the short path's own ground
        out.resource.attributes.add(key="k8s.object.kind").value.string_value = draw(st.sampled_from(["Pod", "Node"]))
    records = [r for s in out.scope_logs for r in s.log_records]
    if draw(_seldom):  # an exact duplicate
        out.scope_logs[0].log_records.add().CopyFrom(draw(st.sampled_from(records)))
    if draw(_seldom):  # a map body that is no object, under any kind
        draw(st.sampled_from(records)).body.CopyFrom(any_value({"type": "ADDED", "object": {"kind": "Pod"}}))
    for _ in range(draw(_seldom) + draw(_seldom)):  # odd or repeated attributes, on the resource or a record
        key, value = _attribute(draw)
        targets: list[Resource | LogRecord] = [out.resource, *records]
        where = draw(st.sampled_from(targets))
        where.attributes.add(key=key).value.CopyFrom(value)
    if draw(_seldom):
        out.scope_logs.add().scope.name = "empty"
    if draw(st.booleans()):
        out.schema_url = "https://opentelemetry.io/schemas/1.26.0"
        out.scope_logs[0].schema_url = "https://opentelemetry.io/schemas/1.25.0"
    if draw(_seldom):  # a scope or resource not set at all (the reference sets it, empty)
        out.scope_logs[0].ClearField("scope") if draw(st.booleans()) else out.ClearField("resource")
    if draw(st.booleans()):  # a field of a newer schema, on the ResourceLogs or on a scope (field 99, varint 5)
        newer: ResourceLogs | ScopeLogs = out if draw(st.booleans()) else out.scope_logs[0]
        newer.MergeFromString(b"\x98\x06\x05")
    return out


def _run(request: ExportLogsServiceRequest, options: EnrichOptions, delivered: set[Hashable],
         *, pass_through: bool) -> EnrichResult:  # fmt: skip
    copy = ExportLogsServiceRequest()
    copy.CopyFrom(request)
    return enrich(copy, MigrationTracker(), options, delivered.__contains__, pass_through=pass_through)


def _counts(result: EnrichResult) -> dict[str, Any]:
    names = ("received", "enriched", "passed", "dropped_others", "duplicates", "unreadable", "objects", "summaries")
    return {name: getattr(result, name) for name in (*names, "keys")}


@given(
    st.lists(resource_logs(), max_size=6),
    st.builds(EnrichOptions, drop_others=st.booleans(), forward_objects=st.booleans(), summaries=st.booleans()),
    st.data(),
)
@example([_POOL[0]], EnrichOptions(), None)
def test_short_path_gives_what_the_reference_gives(
    resources: list[ResourceLogs], options: EnrichOptions, data: st.DataObject | None
) -> None:
    request = ExportLogsServiceRequest(resource_logs=resources)
    keys = sorted({key for r in resources for s in r.scope_logs for rec in s.log_records
                   if (key := _key(to_dict(rec.attributes))) is not None}, key=repr)  # fmt: skip
    delivered: set[Hashable] = set(data.draw(st.lists(st.sampled_from(keys)))) if data and keys else set()
    reference = _run(request, options, delivered, pass_through=False)
    short = _run(request, options, delivered, pass_through=True)
    assert short.request.SerializeToString() == reference.request.SerializeToString()
    assert short.request == reference.request
    assert _counts(short) == _counts(reference)


def test_records_of_other_kinds_pass_as_they_came() -> None:
    """Pod and Node events, one resource, two scopes: the same message out, nothing dropped."""
    source = ResourceLogs()
    others = [r for r, e in zip(_POOL, _EVENTS, strict=False) if e["involvedObject"]["kind"] in ("Pod", "Node")]
    source.CopyFrom(others[0])
    source.scope_logs.add().CopyFrom(others[1].scope_logs[0])
    result = _run(ExportLogsServiceRequest(resource_logs=[source]), EnrichOptions(), set(), pass_through=True)
    assert list(result.request.resource_logs) == [source]
    assert (result.received, result.passed, result.enriched) == (2, 2, 0)


@pytest.mark.parametrize("where", ["k8s.event.count", "k8s.object.kind"])
def test_a_list_or_map_where_a_scalar_belongs_costs_nothing_else(where: str) -> None:
    """A ``k8s.event.count`` or resource ``k8s.object.kind`` that is a list or a map (valid OTLP, never
    sent by the receiver) used to make enrich raise TypeError (an unhashable key), failing the whole
    request; now the record passes as it came, on both paths alike, and the others with it."""
    pods = [r for r, e in zip(_POOL, _EVENTS, strict=False) if e["involvedObject"]["kind"] == "Pod"]
    vmi = next(
        r for r, e in zip(_POOL, _EVENTS, strict=False) if e["involvedObject"]["kind"] == "VirtualMachineInstance"
    )
    odd = ResourceLogs()
    odd.CopyFrom(pods[0])
    target = odd.scope_logs[0].log_records[0] if where == "k8s.event.count" else odd.resource
    target.attributes.add(key=where).value.CopyFrom(any_value([1]))
    twin = ResourceLogs()
    twin.CopyFrom(odd)
    twin.scope_logs[0].log_records[0].attributes.add(key="x").value.CopyFrom(any_value({"a": "b"}))
    request = ExportLogsServiceRequest(resource_logs=[odd, vmi, twin])
    short, reference = (_run(request, EnrichOptions(), set(), pass_through=p) for p in (True, False))
    assert short.request.SerializeToString() == reference.request.SerializeToString()
    assert (short.passed, short.enriched, short.duplicates) == (1, 1, 1)  # the twin: same uid and count


@pytest.mark.parametrize("count", [float("nan"), 2.0])
def test_a_float_count_still_finds_its_duplicate(count: float) -> None:
    """Found in review: a NaN ``k8s.event.count`` (valid OTLP) made a key never equal to itself, so
    a retried record was never a duplicate; floats are keyed by their text, on both paths."""
    pods = [r for r, e in zip(_POOL, _EVENTS, strict=False) if e["involvedObject"]["kind"] == "Pod"]
    odd = ResourceLogs()
    odd.CopyFrom(pods[0])
    record = odd.scope_logs[0].log_records[0]
    for kv in record.attributes:
        if kv.key == "k8s.event.count":
            kv.value.double_value = count
            break
    else:
        record.attributes.add(key="k8s.event.count").value.double_value = count
    request = ExportLogsServiceRequest(resource_logs=[odd, odd])
    for pass_through in (True, False):
        result = _run(request, EnrichOptions(), set(), pass_through=pass_through)
        assert (result.passed, result.duplicates) == (1, 1)


@pytest.mark.parametrize("change", ["unknown field on the ResourceLogs", "unknown field on the scope",
                                    "no resource", "no scope"])  # fmt: skip
def test_what_the_reference_would_not_copy_as_is(change: str) -> None:
    """The reference builds each ResourceLogs anew from its known fields: the short path copies a
    whole one only when that gives the same bytes."""
    source = ResourceLogs()
    source.CopyFrom(next(r for r, e in zip(_POOL, _EVENTS, strict=False) if e["involvedObject"]["kind"] == "Pod"))
    if change.startswith("unknown"):
        (source if change.endswith("ResourceLogs") else source.scope_logs[0]).MergeFromString(b"\x98\x06\x05")
    else:
        source.ClearField("resource") if change == "no resource" else source.scope_logs[0].ClearField("scope")
    request = ExportLogsServiceRequest(resource_logs=[source])
    short, reference = (_run(request, EnrichOptions(), set(), pass_through=p) for p in (True, False))
    assert short.request.SerializeToString() == reference.request.SerializeToString()
    assert short.passed == reference.passed == 1
