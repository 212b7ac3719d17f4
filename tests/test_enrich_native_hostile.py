"""The native core (``otelkv.otlp._wire``) under hostile input: what an attacker or an odd sender
can put in a request, and what a caller of the module can get wrong.

- Requests upb accepts but the collector never sends (tests/otlp_requests.py covers its shapes):
  values of every AnyValue type and extreme (negative and huge counts, NaN, long and non-ASCII
  strings, bytes, unset values), the same key twice, an existing ``service.name`` that is no
  string, severity numbers out of range, unknown fields in records, resources and values, custom
  ``kinds`` and empty service names: :func:`enrich_wire` (or the reference it falls back to) gives
  the bytes, counts and keys of ``enrich(..., pass_through=False)``.
- Bytes that are no request (truncated, bit-flipped, varint edge cases, nested deep, many tiny
  records): scan answers None or a plan that builds; never a crash.
- A plan is bound to the payload it was scanned from; build never reads past it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from types import ModuleType

import pytest
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs

from otelkv.errors import BadRequest
from otelkv.kubevirt import MigrationTracker
from otelkv.kubevirt.event_builders import new_event
from otelkv.otlp.enrich import EnrichOptions, EnrichResult, enrich
from otelkv.otlp.wire import _PAIRS, enrich_wire
from tests.conftest import compiled_core
from tests.otlp_requests import EVENTS, POOL
from tests.test_enrich_native import _NO_LIMIT
from tests.wire_format import length_field, varint

CORE: ModuleType | None = None


@pytest.fixture(autouse=True, scope="module")
def _compiled() -> None:
    global CORE  # noqa: PLW0603 - module scope: the Hypothesis tests cannot take a function fixture
    CORE = compiled_core().module


_KEYS = [
    "k8s.object.kind",
    "service.name",
    "k8s.namespace.name",
    "k8s.event.uid",
    "k8s.event.count",
    "k8s.event.reason",
    "k8s.object.name",
    "",
    "x",
    "body",
    "timestamp",
    "severity_text",
]
_TEXTS = st.sampled_from(
    [
        "",
        "VirtualMachineInstance",
        "VirtualMachineInstanceMigration",
        "Pod",
        "ns",
        "Migrated",
        "MigrationSucceeded",
        "uid-1",
        "é\u2028\U0001f600",
        "\x00",
        "x" * 70_000,
    ]
)


def _any_value(draw: st.DrawFn, depth: int = 0) -> AnyValue:
    kind = draw(
        st.sampled_from(
            ["string", "string", "string", "int", "double", "bool", "bytes", "unset", "strindex", "array", "kvlist"]
            if depth < 2
            else ["string", "int", "unset"]
        )
    )
    if kind == "strindex":  # AnyValue field 8: string_value_strindex (opentelemetry-proto >= 1.5), raw
        value = AnyValue()
        value.MergeFromString(b"\x40" + bytes([draw(st.integers(0, 127))]))
        return value
    if kind == "string":
        return AnyValue(string_value=draw(_TEXTS))
    if kind == "int":
        return AnyValue(int_value=draw(st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63)]) | st.integers(-5, 5)))
    if kind == "double":
        return AnyValue(double_value=draw(st.sampled_from([0.0, -0.0, 1.5, math.nan, math.inf, -math.inf])))
    if kind == "bool":
        return AnyValue(bool_value=draw(st.booleans()))
    if kind == "bytes":
        return AnyValue(bytes_value=draw(st.sampled_from([b"", b"\xff\xfe", b"uid-1"])))
    size = draw(st.integers(0, 2))
    if kind == "array":
        return AnyValue(array_value=ArrayValue(values=[_any_value(draw, depth + 1) for _ in range(size)]))
    if kind == "kvlist":
        entries = [KeyValue(key=draw(st.sampled_from(_KEYS)), value=_any_value(draw, depth + 1)) for _ in range(size)]
        return AnyValue(kvlist_value=KeyValueList(values=entries))
    return AnyValue()


def _attributes(draw: st.DrawFn, into: RepeatedCompositeFieldContainer[KeyValue]) -> None:
    for _ in range(draw(st.integers(0, 5))):
        kv = into.add()
        kv.key = draw(st.sampled_from(_KEYS))
        if draw(st.integers(0, 7)):  # else: a KeyValue without a value
            kv.value.CopyFrom(_any_value(draw))
        if not draw(st.integers(0, 15)):  # an unknown field in the KeyValue or its value
            (kv if draw(st.booleans()) else kv.value).MergeFromString(b"\x98\x06\x01")


@st.composite
def hostile_resource_logs(draw: st.DrawFn) -> ResourceLogs:
    """A pooled ResourceLogs (the collector's shapes), then changed in ways it never sends."""
    out = ResourceLogs()
    out.CopyFrom(draw(st.sampled_from(POOL[: len(EVENTS)])))
    if draw(st.booleans()):
        _attributes(draw, out.resource.attributes)
    if not draw(st.integers(0, 5)):
        out.resource.MergeFromString(b"\x10\x03\x98\x06\x02")  # dropped_attributes_count, an unknown field
    for _ in range(draw(st.integers(0, 3))):
        scope = out.scope_logs[0] if draw(st.booleans()) else out.scope_logs.add()
        record = scope.log_records.add()
        if draw(st.booleans()):
            record.CopyFrom(draw(st.sampled_from(POOL[: len(EVENTS)])).scope_logs[0].log_records[0])
        _attributes(draw, record.attributes)
        if draw(st.booleans()):
            record.severity_number = draw(st.sampled_from([0, 9, 13, 24, 25, -1, 2**31 - 1, -(2**31)]))  # type: ignore[assignment]
        if draw(st.booleans()):
            record.severity_text = draw(_TEXTS)
        if draw(st.booleans()):
            record.body.CopyFrom(_any_value(draw))
        if draw(st.booleans()):
            record.time_unix_nano = draw(st.sampled_from([0, 1, 2**64 - 1, 1795163760000000000]))
        if draw(st.booleans()):
            record.observed_time_unix_nano = draw(st.sampled_from([0, 2**64 - 1, 1795163760000000000]))
        if not draw(st.integers(0, 5)):
            record.flags, record.trace_id, record.dropped_attributes_count = 1, b"\x01" * 16, 7
        if not draw(st.integers(0, 5)):  # fields of a newer schema: varint, string, fixed64, fixed32
            record.MergeFromString(
                draw(
                    st.sampled_from(
                        [b"\x98\x06\x05", b"\xa2\x06\x02hi", b"\x61" + b"\x01" * 8, b"\xad\x06\x01\x02\x03\x04"]
                    )
                )
            )
    return out


def _counts(result: EnrichResult) -> tuple[object, ...]:
    return (
        result.received,
        result.enriched,
        result.passed,
        result.dropped_others,
        result.duplicates,
        result.unreadable,
        result.objects,
        result.summaries,
        result.keys,
    )


_DEFAULTS = EnrichOptions()


def _both(payload: bytes, options: EnrichOptions = _DEFAULTS) -> tuple[EnrichResult, EnrichResult, bool]:
    """(the reference's result, the core's or its fallback's, whether the core took it)."""
    assert CORE is not None
    delivered: set[Hashable] = set()
    request = ExportLogsServiceRequest.FromString(payload)
    reference = enrich(request, MigrationTracker(), options, delivered.__contains__, pass_through=False)
    native = enrich_wire(payload, MigrationTracker(), options, delivered.__contains__, core=CORE)
    if native is None:
        return reference, enrich(request, MigrationTracker(), options, delivered.__contains__), False
    return reference, native, True


@given(
    st.lists(hostile_resource_logs(), min_size=1, max_size=4),
    st.builds(
        EnrichOptions,
        kinds=st.sampled_from([EnrichOptions().kinds, frozenset({"Pod"}), frozenset(), frozenset({"", "Node"})]),
        drop_others=st.booleans(),
        summaries=st.booleans(),
        service_name=st.sampled_from(["kubevirt-events", "", "é" * 3]),
    ),
)
def test_hostile_requests_give_what_the_reference_gives(resources: list[ResourceLogs], options: EnrichOptions) -> None:
    reference, native, _ = _both(ExportLogsServiceRequest(resource_logs=resources).SerializeToString(), options)
    assert native.payload == reference.payload
    assert _counts(native) == _counts(reference)


def _strindex(record: LogRecord, key: str, index: int) -> None:
    """An attribute whose value is AnyValue field 8 (``string_value_strindex``, an int32, in the newer
    opentelemetry-proto that requirements.lock pins; an unknown field in older ones): written raw, so
    that it is the same bytes with either."""
    kv = record.attributes.add(key=key)
    kv.value.MergeFromString(b"\x40" + bytes([index]))


VMI = "VirtualMachineInstance"


def _vmi() -> ResourceLogs:
    out = ResourceLogs()
    out.CopyFrom(next(r for r, e in zip(POOL, EVENTS, strict=False) if e["involvedObject"]["kind"] == VMI))
    return out


@pytest.mark.parametrize("key", ["k8s.event.count", "k8s.event.uid", "k8s.event.reason", "k8s.namespace.name"])
def test_a_value_of_a_newer_schema_is_read_as_the_reference_reads_it(key: str) -> None:
    """Found by fuzzing: a count as string_value_strindex was None to the core, 43 to the reference
    (another dedup key). The core leaves any AnyValue field past 7 to the reference."""
    vmi = _vmi()
    record = vmi.scope_logs[0].log_records[0]
    kept = [kv for kv in record.attributes if kv.key != key]
    del record.attributes[:]
    record.attributes.extend(kept)
    _strindex(record, key, 43)
    reference, native, _ = _both(ExportLogsServiceRequest(resource_logs=[vmi, vmi]).SerializeToString())
    assert _counts(native) == _counts(reference)
    assert native.payload == reference.payload


def _scanned(payload: bytes) -> tuple[object, int]:
    assert CORE is not None
    scanned = CORE.scan(payload, EnrichOptions().kinds, False, set().__contains__, frozenset())
    assert scanned is not None
    return scanned[0], len(scanned[1])


def test_a_plan_builds_only_the_payload_it_was_scanned_from() -> None:
    """build(other, plan) read the other bytes at the plan's positions: past their end when shorter
    (a heap overflow under AddressSanitizer). The plan holds its payload and build takes no other,
    even an equal copy."""
    assert CORE is not None
    big = ExportLogsServiceRequest(resource_logs=POOL[:20]).SerializeToString()
    small = ExportLogsServiceRequest(resource_logs=POOL[:1]).SerializeToString()
    plan, views = _scanned(big)
    for other in (small, bytes(bytearray(big)), big[:-1] + b"\x00"):
        with pytest.raises(ValueError, match="another payload"):
            CORE.build(other, plan, [None] * views, "kubevirt-events", _PAIRS, _NO_LIMIT)
    first = CORE.build(big, plan, [None] * views, "kubevirt-events", _PAIRS, _NO_LIMIT)
    assert CORE.build(big, plan, [None] * views, "kubevirt-events", _PAIRS, _NO_LIMIT) == first  # a plan builds twice


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_scan_takes_bytes_only(kind: type) -> None:
    """A mutable buffer could change while delivered() runs (scan walks each level twice and trusted
    the second walk): bytes only."""
    assert CORE is not None
    payload = ExportLogsServiceRequest(resource_logs=POOL[:3]).SerializeToString()
    with pytest.raises(TypeError):
        CORE.scan(kind(payload), EnrichOptions().kinds, False, set().__contains__, frozenset())


def test_decisions_changed_while_building_are_not_read() -> None:
    """build calls Python (an event's attributes) while it holds the decisions: a list emptied by
    that code was read past its end (a crash). build works on a copy."""
    assert CORE is not None
    payload = ExportLogsServiceRequest(resource_logs=POOL[:6]).SerializeToString()
    plan, views = _scanned(payload)
    assert views > 1
    event = new_event(reason="Migrated", message="m", vm_name="vm")
    decisions: list[tuple[str | None, object, bytes | None] | None] = []

    class Clearing:
        def __getattr__(self, name: str) -> object:
            decisions.clear()
            return getattr(event, name)

    decisions.extend([("ns", Clearing(), None)] * views)
    expected = CORE.build(payload, plan, [("ns", event, None)] * views, "kubevirt-events", _PAIRS, _NO_LIMIT)
    assert CORE.build(payload, plan, decisions, "kubevirt-events", _PAIRS, _NO_LIMIT) == expected


def test_many_namespaces_in_one_resource() -> None:
    """Records of one resource in as many namespaces: a ResourceLogs each, as the reference writes
    them (build groups them through a dict: linear, where it compared each record with every
    group before; bench/hostile.py measures it)."""
    vmi = _vmi()
    proto = vmi.scope_logs[0].log_records[0]
    del vmi.scope_logs[0].log_records[:]
    for i in range(300):
        record = vmi.scope_logs[i % 2 if i % 3 else 0].log_records.add() if len(vmi.scope_logs) > 1 else None
        record = record or vmi.scope_logs[0].log_records.add()
        record.CopyFrom(proto)
        for kv in record.attributes:
            if kv.key == "k8s.event.uid":
                kv.value.string_value = f"uid-{i}"
            elif kv.key == "k8s.namespace.name":
                kv.value.string_value = f"ns-{i % 150}"
        if i == 100:
            vmi.scope_logs.add().scope.name = "second"
    reference, native, taken = _both(ExportLogsServiceRequest(resource_logs=[vmi, POOL[0]]).SerializeToString())
    assert taken
    assert len(reference.request.resource_logs) > 150
    assert native.payload == reference.payload
    assert _counts(native) == _counts(reference)


#: Bytes a mutation puts in: varints of 10 bytes and past, lengths near 2**63 and past the end,
#: field number 0 and past 2**29, wire types 3, 4, 6 and 7, cut fixed fields.
_EDGES = [
    varint(2**64 - 1),
    b"\xff" * 10 + b"\x01",
    b"\x80" * 9 + b"\x00",
    b"\x0a" + varint(2**63 - 5),
    b"\x0a" + varint(2**62),
    b"\x0a" + b"\xff" * 10,
    b"\x02\x00",
    b"\x0b",
    b"\x0c",
    b"\x0e",
    b"\x0f",
    b"\x13\x14",
    varint((2**29 - 1) << 3) + b"\x01",
    varint(2**29 << 3) + b"\x01",
    b"\x0a\x05",
    b"\x12\x7f",
    b"\x32\x00",
    b"\x09\x00\x00",
    b"\x0d\x00",
    b"\x2a\x00",
]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A real request (or several ResourceLogs of one) with a few bytes flipped, cut, put in or taken out."""
    resources = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=4))
    data = bytearray(ExportLogsServiceRequest(resource_logs=resources).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["flip", "cut", "insert", "delete", "edge"]))
        if how == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[at:]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:at] = draw(st.sampled_from(_EDGES))
    return bytes(data)


@given(_mutated())
def test_mutated_requests_never_crash_the_core(payload: bytes) -> None:
    """Any bytes: scan answers None or a plan that builds (with decisions of every kind); where upb
    takes the bytes, the same message as the reference's (the same bytes on canonical input)."""
    assert CORE is not None
    scanned = CORE.scan(payload, EnrichOptions().kinds, False, set().__contains__, frozenset())
    if scanned is not None:
        plan, views, _, _ = scanned
        event = new_event(reason="Migrated", message="m", vm_name="vm")
        decisions = [None if i % 3 == 0 else (f"ns-{i % 2}", event, b"" if i % 5 else None) for i in range(len(views))]
        assert isinstance(CORE.build(payload, plan, decisions, "kubevirt-events", _PAIRS, _NO_LIMIT), bytes)
    try:
        request = ExportLogsServiceRequest.FromString(payload)
    except DecodeError:
        return
    reference, native, _ = _both(payload)
    assert _counts(native) == _counts(reference)
    if request.SerializeToString() == payload:
        assert native.payload == reference.payload
    else:
        assert native.request == reference.request


def test_a_flood_of_empty_records() -> None:
    """100,000 empty records (2 bytes each) in one scope, and as many empty ResourceLogs: taken,
    as the reference writes them."""
    records = length_field(1, length_field(2, b"\x12\x00" * 100_000))
    resources = length_field(1, length_field(2, b"")) * 100_000
    for payload in (records, resources):
        reference, native, taken = _both(payload)
        assert taken
        assert native.payload == reference.payload
        assert _counts(native) == _counts(reference)


def _amplifying(namespaces: int, *, pad: int = 100_000, in_scope: bool = False) -> bytes:
    """One KubeVirt resource with a ``pad``-byte attribute (or a scope with one), and ``namespaces``
    tiny records, each in a namespace of its own: the split copies the pad once per namespace."""
    out = ResourceLogs()
    out.resource.attributes.add(key="k8s.object.kind").value.string_value = VMI
    scope = out.scope_logs.add()
    padded = scope.scope.attributes if in_scope else out.resource.attributes
    padded.add(key="pad").value.string_value = "x" * pad
    for i in range(namespaces):
        scope.log_records.add().attributes.add(key="k8s.namespace.name").value.string_value = f"ns-{i}"
    return ExportLogsServiceRequest(resource_logs=[out]).SerializeToString()


@pytest.mark.parametrize("in_scope", [False, True])
def test_a_request_that_would_copy_its_resource_per_namespace_is_refused(in_scope: bool) -> None:
    """A large resource (or scope) and tiny records in as many namespaces: the reference and the
    core copied it once per namespace, 116 KB in, 50 MB out (4 MiB in: gigabytes, the server
    killed). Copies past twice the request's size and 1 MiB are a BadRequest (too large) on both
    paths; a few namespaces still split as before."""
    assert CORE is not None
    payload = _amplifying(50, in_scope=in_scope)
    request = ExportLogsServiceRequest.FromString(payload)
    for pass_through in (True, False):
        with pytest.raises(BadRequest, match="would copy its resources and scopes") as refused:
            enrich(request, MigrationTracker(), EnrichOptions(), set().__contains__, pass_through=pass_through)
        assert refused.value.too_large
    with pytest.raises(BadRequest, match="would copy its resources and scopes") as refused:
        enrich_wire(payload, MigrationTracker(), EnrichOptions(), set().__contains__, core=CORE)
    assert refused.value.too_large
    reference, native, taken = _both(_amplifying(5, in_scope=in_scope))
    assert taken
    assert len(reference.request.resource_logs) == 5
    assert native.payload == reference.payload
