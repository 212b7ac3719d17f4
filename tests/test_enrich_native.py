"""The native core (``otelkv.otlp._wire``, issue 13 item 2) against the reference path.

A differential test: on generated requests (tests/otlp_requests.py: KubeVirt and other events,
migration objects, map bodies, duplicates, records without a uid or enriched before, existing
``service.name`` and namespace, odd attribute types, empty and unset scopes and resources, schema
URLs, unknown fields, records delivered before), in two requests one after the other through the
same tracker, :func:`enrich_wire` — or, where it declines, the reference it falls back to — gives
the very bytes, counts and keys of ``enrich(..., pass_through=False)``. Then: which shapes the
core takes and which it leaves, input that is not canonical (the same message out), and bytes
that are not a request at all (never a crash).

The compiled module must exist here: CI machines have a compiler, so a missing one fails
(tests.conftest.compiled_core).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping
from types import ModuleType
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from otelkv.kubevirt import MigrationTracker, parse_k8s_event
from otelkv.kubevirt.event_builders import new_event
from otelkv.kubevirt.k8s import COLLECTOR_FIELDS, collector_event
from otelkv.otlp.attributes import to_dict
from otelkv.otlp.enrich import EnrichOptions, EnrichResult, enrich
from otelkv.otlp.kubevirt_records import event_view
from otelkv.otlp.record_keys import key_of
from otelkv.otlp.wire import _PAIRS, enrich_wire
from tests.conftest import compiled_core
from tests.migration_objects import any_value
from tests.otlp_requests import EVENTS, POOL, resource_logs, seldom
from tests.wire_format import field_number, fields, length_field

#: build's limit on what it copies, for tests of other things.
_NO_LIMIT = 2**62
_COUNTS = ("received", "enriched", "passed", "dropped_others", "duplicates", "unreadable", "objects", "summaries")


CORE: ModuleType | None = None


@pytest.fixture(autouse=True, scope="module")
def _compiled() -> None:
    """Every test here calls the compiled core (CORE), as tests.conftest.compiled_core finds it."""
    global CORE  # noqa: PLW0603 - module scope: the Hypothesis tests cannot take a function fixture
    CORE = compiled_core().module


def _both(
    payload: bytes,
    options: EnrichOptions,
    delivered: set[Hashable],
    trackers: tuple[MigrationTracker, ...],
) -> tuple[EnrichResult, EnrichResult, bool]:
    """(reference, native-or-fallback, whether the core took it)."""
    assert CORE is not None
    reference = enrich(
        ExportLogsServiceRequest.FromString(payload), trackers[0], options, delivered.__contains__, pass_through=False
    )
    native = enrich_wire(payload, trackers[1], options, delivered.__contains__, core=CORE)
    taken = native is not None
    if native is None:
        native = enrich(ExportLogsServiceRequest.FromString(payload), trackers[1], options, delivered.__contains__)
    return reference, native, taken


def _counts(result: EnrichResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in (*_COUNTS, "keys")}


def _same(reference: EnrichResult, native: EnrichResult) -> None:
    assert native.payload == reference.payload
    assert _counts(native) == _counts(reference)


_kubevirt_mostly = seldom  # other kinds one time in four: the core's own ground is KubeVirt records


@given(
    st.lists(resource_logs(other_kind=_kubevirt_mostly), max_size=6),
    st.lists(resource_logs(other_kind=_kubevirt_mostly), max_size=4),
    st.builds(
        EnrichOptions,
        drop_others=st.booleans(),
        forward_objects=st.booleans(),
        summaries=st.booleans(),
        service_name=st.sampled_from(["kubevirt-events", "", "vm-events"]),
    ),
    st.data(),
)
@example([POOL[0]], [], EnrichOptions(), None)
def test_native_gives_what_the_reference_gives(
    first: list[ResourceLogs], second: list[ResourceLogs], options: EnrichOptions, data: st.DataObject | None
) -> None:
    trackers = (MigrationTracker(), MigrationTracker())
    delivered: set[Hashable] = set()
    for resources in (first, second):
        payload = ExportLogsServiceRequest(resource_logs=resources).SerializeToString()
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
        if data is not None and keys:
            delivered |= set(data.draw(st.lists(st.sampled_from(keys), max_size=3)))
        reference, native, _ = _both(payload, options, delivered, trackers)
        _same(reference, native)
        delivered |= set(reference.keys)  # delivered: the next request's retries are duplicates


@given(st.lists(resource_logs(other_kind=_kubevirt_mostly, native=True), max_size=6), st.booleans(), st.booleans())
def test_the_core_takes_every_shape_the_collector_sends(
    resources: list[ResourceLogs], drop_others: bool, summaries: bool
) -> None:
    """Without the shapes it leaves to the reference, the core takes every request (so that the
    test above checks the core itself, not the fallback)."""
    payload = ExportLogsServiceRequest(resource_logs=resources).SerializeToString()
    options = EnrichOptions(drop_others=drop_others, summaries=summaries)
    reference, native, taken = _both(payload, options, set(), (MigrationTracker(), MigrationTracker()))
    assert taken
    _same(reference, native)


@given(st.lists(resource_logs(other_kind=_kubevirt_mostly, native=True), max_size=4))
def test_the_core_reads_each_event_as_the_reference_does(resources: list[ResourceLogs]) -> None:
    """What the reader reads of each KubeVirt record: the core's values are the reference's mapping's
    (kubevirt_records.event_view) for every field the reader reads, the event read from them the
    same (or both a TypeError), and its key record_keys.key_of."""
    assert CORE is not None
    request = ExportLogsServiceRequest(resource_logs=resources)
    kinds = EnrichOptions().kinds
    scanned = CORE.scan(request.SerializeToString(), kinds, False, set().__contains__, frozenset())
    assert scanned is not None
    expected = []
    seen: set[Hashable] = set()
    for rl in request.resource_logs:
        resource = to_dict(rl.resource.attributes)
        for scope in rl.scope_logs:
            for record in scope.log_records:
                attributes = to_dict(record.attributes)
                key = key_of(attributes)
                if key is not None and key in seen:
                    continue
                seen.add(key)
                view = event_view(resource, attributes, record, None, kinds)
                if view is not None:
                    expected.append((view, key, record))
    assert [key for _, key, *_ in scanned[1]] == [key for _, key, _ in expected]
    for (values, *_), (view, _, _) in zip(scanned[1], expected, strict=True):
        assert values == _read_of(view)
        assert _event_or_error(lambda values=values: collector_event(*values)) == _event_or_error(
            lambda view=view: parse_k8s_event(view)
        )
    payload = request.SerializeToString()
    assert [payload[start:end] for _, _, start, end, _ in scanned[1]] == [r.SerializeToString() for *_, r in expected]


def _read_of(view: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of COLLECTOR_FIELDS the reader reads in ``view``: the start time only without a
    record time, the reporting instance only without a node name (the core hands over no other)."""
    values = dict(zip(COLLECTOR_FIELDS, map(view.get, COLLECTOR_FIELDS), strict=True))
    if values["timestamp"]:
        values["k8s.event.start_time"] = None
    node = values["k8s.node.name"]
    if isinstance(node, str) and node:
        values["k8s.event.reporting_instance"] = None
    return tuple(values.values())


def _event_or_error(read: Any) -> Any:
    try:
        return read()
    except TypeError:
        return TypeError


def _stream(n: int = len(EVENTS)) -> bytes:
    """The example stream as the collector sends it: KubeVirt, Pod and Node events, one resource each."""
    return ExportLogsServiceRequest(resource_logs=POOL[:n]).SerializeToString()


def test_the_core_takes_the_collectors_stream() -> None:
    """The example stream (four migrations, summaries, other kinds' events) is the core's, not the
    fallback's, and comes out as the reference writes it."""
    reference, native, taken = _both(_stream(), EnrichOptions(), set(), (MigrationTracker(), MigrationTracker()))
    assert taken
    assert native.summaries == 4 and native.enriched > 20
    _same(reference, native)


def _first(resource_kind: str) -> ResourceLogs:
    out = ResourceLogs()
    out.CopyFrom(next(r for r, e in zip(POOL, EVENTS, strict=False) if e["involvedObject"]["kind"] == resource_kind))
    return out


@pytest.mark.parametrize(
    "shape",
    [
        "a map body",
        "a record enriched before",
        "a list value",
        "two bodies",
        "a KeyValue with two keys",
        "a service.name with a second field",
    ],
)
def test_shapes_the_core_leaves_to_the_reference(shape: str) -> None:
    """Each declined before anything was done (the tracker untouched); the fallback then gives the
    reference's output."""
    vmi = _first("VirtualMachineInstance")
    record = vmi.scope_logs[0].log_records[0]
    extra = b""
    if shape == "a map body":
        record.body.CopyFrom(any_value({"a": "b"}))
    elif shape == "a record enriched before":
        record.attributes.add(key="kubevirt.migration.phase").value.string_value = "Running"
    elif shape == "a list value":
        record.attributes.add(key="k8s.event.action").value.CopyFrom(any_value([1]))
    elif shape == "two bodies":
        extra = b"\x2a\x03\x0a\x01x"  # field 5 again: upb merges the two
    elif shape == "a KeyValue with two keys":
        extra = b"\x32\x06\x0a\x01a\x0a\x01b"
    else:
        vmi.resource.attributes.add(key="service.name").value.string_value = "app"
        vmi.resource.attributes[-1].MergeFromString(b"\x18\x01")  # an unknown field 3 on the KeyValue
    scope = length_field(1, vmi.scope_logs[0].scope.SerializeToString())
    scope += length_field(2, record.SerializeToString() + extra)  # as sent: upb would merge a parsed one
    odd = length_field(1, length_field(1, vmi.resource.SerializeToString()) + length_field(2, scope))
    payload = odd + ExportLogsServiceRequest(resource_logs=[_first("Pod")]).SerializeToString()
    assert CORE is not None
    tracker = MigrationTracker()
    assert enrich_wire(payload, tracker, EnrichOptions(), set().__contains__, core=CORE) is None
    assert tracker.migrations() == ()
    reference, native, _ = _both(payload, EnrichOptions(), set(), (MigrationTracker(), MigrationTracker()))
    assert native.request == reference.request


def _shuffled(message: bytes, seed: int) -> bytes:
    """The fields of ``message`` in another order, each repeated field's entries still in theirs."""
    queues: dict[int, list[bytes]] = {}
    for field in fields(message):
        queues.setdefault(field_number(field), []).append(field)
    order = [number for number, fields in queues.items() for _ in fields]
    random.Random(seed).shuffle(order)
    return b"".join(queues[number].pop(0) for number in order)


@pytest.mark.parametrize("seed", range(5))
def test_fields_in_any_order_give_the_same_message(seed: int) -> None:
    """A record's and a resource's fields in another order (valid protobuf, not canonical): the
    same message as the reference's, even where the bytes differ."""
    resources = POOL[: len(EVENTS)]
    plain = ExportLogsServiceRequest(resource_logs=resources).SerializeToString()
    payload = b"".join(_rebuilt(rl, seed) for rl in resources)
    assert payload != plain
    assert ExportLogsServiceRequest.FromString(payload) == ExportLogsServiceRequest.FromString(plain)
    reference, native, taken = _both(payload, EnrichOptions(), set(), (MigrationTracker(), MigrationTracker()))
    assert taken
    assert native.request == reference.request
    assert _counts(native) == _counts(reference)


def _rebuilt(rl: ResourceLogs, seed: int) -> bytes:
    """``rl`` as request field 1, its resource's and records' fields shuffled."""
    resource = _shuffled(rl.resource.SerializeToString(), seed)
    scopes = b""
    for scope in rl.scope_logs:
        records = b"".join(length_field(2, _shuffled(r.SerializeToString(), seed)) for r in scope.log_records)
        scopes += length_field(2, length_field(1, scope.scope.SerializeToString()) + records)
    return length_field(1, length_field(1, resource) + scopes)


@given(st.binary(max_size=300) | st.builds(lambda n, cut: _stream(n)[:cut], st.integers(1, 8), st.integers(0, 5000)))
def test_any_bytes_never_crash_the_core(payload: bytes) -> None:
    """Bytes that are no request, or a cut one (the receivers refuse both before the core sees them,
    but the core must not trust that): None, or a plan that builds."""
    assert CORE is not None
    scanned = CORE.scan(payload, EnrichOptions().kinds, False, set().__contains__, frozenset())
    if scanned is not None:
        plan, views, _, _ = scanned
        decisions = [None] * len(views)
        assert isinstance(CORE.build(payload, plan, decisions, "kubevirt-events", _PAIRS, _NO_LIMIT), bytes)


def test_wrong_decisions_are_a_type_error_not_a_crash() -> None:
    assert CORE is not None
    payload = _stream(3)
    plan, views, _, _ = CORE.scan(payload, EnrichOptions().kinds, False, set().__contains__, frozenset())
    assert views
    event = new_event(reason="Migrated", message="m", vm_name="vm")
    with pytest.raises(ValueError, match="fewer decisions"):
        CORE.build(payload, plan, [], "kubevirt-events", _PAIRS, _NO_LIMIT)
    with pytest.raises(TypeError, match="a decision is None or"):
        CORE.build(payload, plan, [(1, event, None)] * len(views), "kubevirt-events", _PAIRS, _NO_LIMIT)
    decisions = [("ns", event, None)] * len(views)
    with pytest.raises(AttributeError, match="no_such_field"):
        CORE.build(payload, plan, decisions, "kubevirt-events", (("a", "no_such_field"),), _NO_LIMIT)
    with pytest.raises(TypeError, match="attributes are"):
        CORE.build(payload, plan, decisions, "kubevirt-events", (("a",),), _NO_LIMIT)
    assert CORE.build(payload, plan, [("ns", event, None)] * len(views), "kubevirt-events", _PAIRS, _NO_LIMIT)


def test_the_enriched_marks_are_kubevirt_attributes() -> None:
    """scan looks a record's attribute up in ``attributes`` only when its name starts with
    ``kubevirt.``: a set with another name is refused, not silently ignored."""
    assert CORE is not None
    with pytest.raises(ValueError, match="kubevirt"):
        CORE.scan(_stream(3), EnrichOptions().kinds, False, set().__contains__, frozenset({"k8s.event.reason"}))


def test_the_comparison_catches_a_planted_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The differential check fails when one path's output differs by one attribute: here the core
    is handed one kubevirt.* name misspelt (wire._PAIRS), and both _same and the Hypothesis test
    above report it. Without the plant, the same input agrees."""
    payload = _stream()
    reference, native, taken = _both(payload, EnrichOptions(), set(), (MigrationTracker(), MigrationTracker()))
    assert taken
    _same(reference, native)
    planted = tuple(("kubevirt.migration.phase_" if a == "kubevirt.migration.phase" else a, f) for a, f in _PAIRS)
    monkeypatch.setattr("otelkv.otlp.wire._PAIRS", planted)
    reference, native, taken = _both(payload, EnrichOptions(), set(), (MigrationTracker(), MigrationTracker()))
    assert taken
    assert native.request != reference.request  # the plant took: one attribute's name differs
    with pytest.raises(AssertionError):
        _same(reference, native)
    with pytest.raises(AssertionError, match="Failing test case: test_native_gives_what_the_reference_gives"):
        test_native_gives_what_the_reference_gives()  # it finds a request that shows it, and says which


def test_the_comparison_catches_a_planted_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for the counts: one record counted unreadable in the core's result only."""
    payload = _stream()
    reference, native, _ = _both(payload, EnrichOptions(), set(), (MigrationTracker(), MigrationTracker()))
    native.unreadable += 1
    assert native.payload == reference.payload
    with pytest.raises(AssertionError):
        _same(reference, native)
