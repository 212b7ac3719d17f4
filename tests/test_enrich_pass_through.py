"""Records that are not KubeVirt events take a short path through enrich() (issue 13 item 3).

A differential test: on generated requests — KubeVirt and other events, migration objects, map
bodies under other kinds, duplicates, empty scopes, several scopes and records a resource, odd
attribute types, repeated keys, schema URLs, unset scopes and resources, unknown fields, records
delivered before — the short path and the
reference path (``pass_through=False``) give the same request, byte for byte, and the same counts
and keys.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from otelkv.kubevirt import MigrationTracker
from otelkv.otlp.attributes import to_dict
from otelkv.otlp.enrich import EnrichOptions, EnrichResult, enrich
from otelkv.otlp.record_keys import key_of
from tests.migration_objects import any_value
from tests.otlp_requests import EVENTS as _EVENTS
from tests.otlp_requests import POOL as _POOL
from tests.otlp_requests import resource_logs, seldom


def _run(
    request: ExportLogsServiceRequest, options: EnrichOptions, delivered: set[Hashable], *, pass_through: bool
) -> EnrichResult:
    copy = ExportLogsServiceRequest()
    copy.CopyFrom(request)
    return enrich(copy, MigrationTracker(), options, delivered.__contains__, pass_through=pass_through)


def _counts(result: EnrichResult) -> dict[str, Any]:
    names = ("received", "enriched", "passed", "dropped_others", "duplicates", "unreadable", "objects", "summaries")
    return {name: getattr(result, name) for name in (*names, "keys")}


@given(
    st.lists(resource_logs(other_kind=seldom.map(lambda s: not s)), max_size=6),
    st.builds(EnrichOptions, drop_others=st.booleans(), forward_objects=st.booleans(), summaries=st.booleans()),
    st.data(),
)
@example([_POOL[0]], EnrichOptions(), None)
def test_short_path_gives_what_the_reference_gives(
    resources: list[ResourceLogs], options: EnrichOptions, data: st.DataObject | None
) -> None:
    request = ExportLogsServiceRequest(resource_logs=resources)
    keys = sorted(
        {
            key
            for r in resources
            for s in r.scope_logs
            for rec in s.log_records
            if (key := key_of(to_dict(rec.attributes))) is not None
        },
        key=repr,
    )
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


@pytest.mark.parametrize(
    "change", ["unknown field on the ResourceLogs", "unknown field on the scope", "no resource", "no scope"]
)
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
