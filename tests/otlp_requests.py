"""Generated OTLP logs requests for the differential tests of enrich's paths.

Resources as the collector sends them (every event of the example stream: VMI, VMIM, Pod, Node;
two ``k8sobjects`` migration objects; an application log without any kind), often changed:
more records and scopes, duplicates, map bodies, odd or repeated attributes (on the resource or a
record, service.name and the namespace included), records without a uid or enriched before, empty
scopes, schema URLs, unset scopes and resources, fields of a newer schema.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otelkv.commands.event_file import in_time_order
from otelkv.otlp.k8s_events import to_resource_logs
from tests.conftest import EXAMPLE
from tests.migration_objects import any_value, object_record, vmim

EVENTS = in_time_order(json.loads(EXAMPLE.read_text())["items"])
#: Resources as they come: every example event, two migration objects, an application log.
POOL = [to_resource_logs(e) for e in EVENTS] + [
    object_record(vmim("Running", t=5)),
    object_record(vmim("Succeeded", t=9), watch_type=None),
    ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(body=AnyValue(string_value="GET /healthz 200"))])]),
]
UIDS = sorted({e["metadata"]["uid"] for e in EVENTS})[:3]
_KEYS = ["k8s.event.uid", "k8s.event.count", "k8s.object.kind", "service.name", "k8s.namespace.name", "x"]


def _attribute(draw: st.DrawFn, *, lists: bool) -> tuple[str, AnyValue]:
    key = draw(st.sampled_from(_KEYS))
    texts = st.sampled_from(["", "Pod", "VirtualMachineInstance", *UIDS])
    scalars = st.one_of(texts, st.integers(-2, 3), st.booleans())
    value = draw(scalars | st.sampled_from([[1], {"a": "b"}]) if lists else scalars)
    return key, any_value(value)


#: True one time in four: for the rarer changes.
seldom = st.integers(0, 3).map(lambda n: n == 3)


@st.composite
def resource_logs(draw: st.DrawFn, *, other_kind: st.SearchStrategy[bool], native: bool = False) -> ResourceLogs:
    """One received ResourceLogs: a pooled one, often changed; made a Pod's or Node's event when
    ``other_kind`` draws True. ``native``: only shapes the native core takes (no migration objects
    or map bodies, no list or map values, no record enriched before)."""
    pool = POOL[: len(EVENTS)] if native else POOL
    out = ResourceLogs()
    out.CopyFrom(draw(st.sampled_from(pool)))
    for _ in range(draw(st.integers(0, 2))):  # more records of the same resource (another pooled one's)
        extra = draw(st.sampled_from(pool)).scope_logs[0]
        target = out.scope_logs.add() if draw(st.booleans()) else out.scope_logs[0]
        target.log_records.extend(extra.log_records)
    if draw(other_kind):
        out.resource.attributes.add(key="k8s.object.kind").value.string_value = draw(st.sampled_from(["Pod", "Node"]))
    records = [r for s in out.scope_logs for r in s.log_records]
    if draw(seldom):  # an exact duplicate
        out.scope_logs[0].log_records.add().CopyFrom(draw(st.sampled_from(records)))
    if not native and draw(seldom):  # a map body that is no object, under any kind
        draw(st.sampled_from(records)).body.CopyFrom(any_value({"type": "ADDED", "object": {"kind": "Pod"}}))
    for _ in range(draw(seldom) + draw(seldom)):  # odd or repeated attributes, on the resource or a record
        key, value = _attribute(draw, lists=not native)
        targets: list[Resource | LogRecord] = [out.resource, *records]
        where = draw(st.sampled_from(targets))
        where.attributes.add(key=key).value.CopyFrom(value)
    if draw(seldom):  # the type only as a severity number (an older receiver sets no text)
        draw(st.sampled_from(records)).ClearField("severity_text")
    if draw(seldom):  # a record without its uid: keyed by its bytes
        record = draw(st.sampled_from(records))
        kept = [kv for kv in record.attributes if kv.key != "k8s.event.uid"]
        del record.attributes[:]
        record.attributes.extend(kept)
    if not native and draw(seldom):  # a record enriched before (sent through otelkv twice)
        draw(st.sampled_from(records)).attributes.add(key="kubevirt.vm.name").value.string_value = "vm"
    if draw(seldom):
        out.scope_logs.add().scope.name = "empty"
    if draw(st.booleans()):
        out.schema_url = "https://opentelemetry.io/schemas/1.26.0"
        out.scope_logs[0].schema_url = "https://opentelemetry.io/schemas/1.25.0"
    if draw(seldom):  # a scope or resource not set at all (the reference sets it, empty)
        out.scope_logs[0].ClearField("scope") if draw(st.booleans()) else out.ClearField("resource")
    if draw(st.booleans()):  # a field of a newer schema, on the ResourceLogs or on a scope (field 99, varint 5)
        newer: ResourceLogs | ScopeLogs = out if draw(st.booleans()) else out.scope_logs[0]
        newer.MergeFromString(b"\x98\x06\x05")
    return out
