"""Enrich an OTLP logs request: KubeVirt event records get their migration facts as attributes.

A pure function of the request and the shared state it is given (the migration tracker and the
duplicate window); it walks resource → scope → record and leaves the reading of events to
:mod:`otelkv.kubevirt`. What it changes, and nothing else:

- on a KubeVirt event record: the ``kubevirt.*`` attributes whose value is known;
- the resource of such records: ``service.name`` and ``k8s.namespace.name`` (the record's
  namespace, so that Loki indexes it as a label). Records of one ResourceLogs that differ in
  namespace or kind are split into ResourceLogs of their own; a record never moves to a
  resource that does not describe it;
- beside the record that ends a migration: one ``kubevirt.migration.summary`` record
  (``summaries``);
- a ``k8sobjects`` record of a VirtualMachineInstanceMigration: read into the tracker, and
  consumed unless ``forward_objects``.

Records that are not KubeVirt events keep their resource and bytes (or are dropped when so
configured). Exact duplicates — same ``k8s.event.uid`` and count as a record already delivered
or earlier in the same request — are dropped; the caller marks keys delivered only once the
target accepted them (FACTS §2: otherwise a retry after an outage would be dropped).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber

from otelkv.errors import BadRequest
from otelkv.kubevirt import MigrationEvent, MigrationTracker, parse_k8s_event
from otelkv.kubevirt.objects import read_migration_object
from otelkv.kubevirt.tracker import Tracked

from .attributes import add_values, set_value, to_dict, value_of
from .k8s_objects import ObjectRecord, map_body, migration_object_of
from .summary import summary_key, summary_record

SERVICE_NAME: Final = "service.name"
NAMESPACE: Final = "k8s.namespace.name"
OBJECT_KIND: Final = "k8s.object.kind"
EVENT_UID: Final = "k8s.event.uid"
EVENT_COUNT: Final = "k8s.event.count"
#: The event type when only the severity number came (the receiver sets the text for known types).
_TYPE_OF_SEVERITY: Final = {
    SeverityNumber.SEVERITY_NUMBER_INFO: "Normal",
    SeverityNumber.SEVERITY_NUMBER_WARN: "Warning",
}

#: Record attributes otelkv sets, and the MigrationEvent field each comes from.
ATTRIBUTES: Final[Mapping[str, str]] = {
    "kubevirt.vm.name": "vm_name",
    "kubevirt.migration.phase": "phase",
    "kubevirt.migration.source_node": "source_node",
    "kubevirt.migration.target_node": "target_node",
    "kubevirt.migration.name": "migration_name",
    "kubevirt.migration.uid": "migration_uid",
    "kubevirt.migration.target_pod": "target_pod",
    "kubevirt.migration.failure_reason": "failure_reason",
    "kubevirt.migration.duration_seconds": "duration_seconds",
}

#: The split above copies a received resource once per (namespace, KubeVirt or not) of its records,
#: and a scope once per such group with records in it: a request of a large resource and many tiny
#: records, each in a namespace of its own, would grow with their product (4 MiB to gigabytes).
#: The copies made for a ResourceLogs' second group and later ones may take twice the request's size
#: and this many bytes more; past that, BadRequest. (Its first group's copies are within the
#: request's own size: the collector's shape, one event per ResourceLogs, is not even counted.)
COPY_ALLOWANCE: Final = 1 << 20


def copy_limit(request_size: int) -> int:
    """The bytes of resources and scopes an enriched request of ``request_size`` bytes may copy for
    groups after the first of each ResourceLogs."""
    return 2 * request_size + COPY_ALLOWANCE


def too_many_copies(copied: int, limit: int) -> BadRequest:
    """The error for a request whose enrichment would copy more than ``limit`` bytes."""
    return BadRequest(f"enriching this request would copy its resources and scopes {copied} bytes (once per namespace "
                      f"of a ResourceLogs' records), more than {limit}", too_large=True)  # fmt: skip


@dataclass(frozen=True, slots=True)
class EnrichOptions:
    """What counts as a KubeVirt event, and what to do with the rest."""

    kinds: frozenset[str] = frozenset({"VirtualMachineInstance", "VirtualMachineInstanceMigration"})
    service_name: str = "kubevirt-events"
    drop_others: bool = False
    #: Forward the ``k8sobjects`` records of migration objects (after reading them) or consume them.
    forward_objects: bool = False
    #: Add one ``kubevirt.migration.summary`` record per migration that ends.
    summaries: bool = True


@dataclass(slots=True)
class EnrichResult:
    """The enriched request, what happened to its records, and the keys to mark delivered.

    The request is held as a message (the reference path builds one) or as its wire bytes (the
    native core writes those); :attr:`request` and :attr:`payload` give either, converting once.
    """

    message: ExportLogsServiceRequest | None = None
    wire: bytes | None = None
    received: int = 0
    enriched: int = 0
    passed: int = 0
    dropped_others: int = 0
    duplicates: int = 0
    unreadable: int = 0
    #: Migration object records read and not forwarded (``forward_objects: false``).
    objects: int = 0
    summaries: int = 0
    keys: list[Hashable] = field(default_factory=list)

    @property
    def request(self) -> ExportLogsServiceRequest:
        """The enriched request as a message."""
        if self.message is None:
            self.message = ExportLogsServiceRequest.FromString(self.wire or b"")
        return self.message

    @property
    def payload(self) -> bytes:
        """The enriched request on the wire."""
        if self.wire is None:
            self.wire = self.request.SerializeToString()
        return self.wire

    @property
    def forwarded(self) -> int:
        """Records in the enriched request."""
        return self.enriched + self.passed + self.summaries


class _Copies:
    """The bytes of resources and scopes one request's enrichment copied for groups after the first
    of each ResourceLogs, held to :func:`copy_limit` (the request's size is computed only once the
    copies pass :data:`COPY_ALLOWANCE`)."""

    def __init__(self, request: ExportLogsServiceRequest) -> None:
        self._request, self._copied, self._limit = request, 0, COPY_ALLOWANCE
        self._sized = False

    def add(self, size: int) -> None:
        self._copied += size
        if self._copied > self._limit and not self._sized:
            self._sized, self._limit = True, copy_limit(self._request.ByteSize())
        if self._copied > self._limit:
            raise too_many_copies(self._copied, self._limit)


class _Out:
    """Where the records of one received ResourceLogs go: a ResourceLogs per (namespace, KubeVirt
    or not), made when its first record arrives (never empty), and a scope like each received one."""

    def __init__(self, result: EnrichResult, source: ResourceLogs, options: EnrichOptions, copies: _Copies) -> None:
        self._result, self._source, self._options, self._copies = result, source, options, copies
        self._groups: dict[tuple[str | None, bool], ResourceLogs] = {}
        self._scopes: dict[tuple[str | None, bool], ScopeLogs] = {}
        self._scope = ScopeLogs()
        self._first: tuple[str | None, bool] | None = None  # the first group: its copies are not counted
        self._resource_size = self._scope_size = -1  # read when first counted

    def enter(self, scope_logs: ScopeLogs) -> None:
        self._scope, self._scopes, self._scope_size = scope_logs, {}, -1

    def add(self, record: LogRecord, namespace: str | None, kubevirt: bool) -> LogRecord:
        group = (namespace, kubevirt)
        scope = self._scopes.get(group)
        if scope is None:
            out = self._groups.get(group)
            if out is None:
                if self._first is None:
                    self._first = group
                else:
                    if self._resource_size < 0:
                        self._resource_size = self._source.resource.ByteSize()
                    self._copies.add(self._resource_size)
                out = self._groups[group] = _resource_for(self._result.request, self._source, group, self._options)
            if group != self._first:
                if self._scope_size < 0:
                    self._scope_size = self._scope.scope.ByteSize()
                self._copies.add(self._scope_size)
            scope = self._scopes[group] = _scope_like(out, self._scope)
        copy = scope.log_records.add()
        copy.CopyFrom(record)
        return copy


def _first_time(key: Hashable | None, seen: set[Hashable], delivered: Callable[[Hashable], bool],
                result: EnrichResult) -> bool:  # fmt: skip
    """False for a record already in this request or delivered before (counted a duplicate);
    else its key (if it has one) is remembered, to be marked delivered with the request."""
    if key is None:
        return True
    if key in seen or delivered(key):
        result.duplicates += 1
        return False
    seen.add(key)
    result.keys.append(key)
    return True


def enrich(
    request: ExportLogsServiceRequest,
    tracker: MigrationTracker,
    options: EnrichOptions,
    delivered: Callable[[Hashable], bool],
    *,
    now: datetime | None = None,
    pass_through: bool = True,
) -> EnrichResult:
    """Enrich ``request``; ``delivered(key)`` tells whether a record key was delivered before.

    ``now`` is when the request arrived: the tracker reads an event stamped far after it as undated.
    ``pass_through=False`` takes every ResourceLogs through the reference path (for differential
    tests): the output is the same. :class:`~otelkv.errors.BadRequest` (too large) when the split
    would copy resources and scopes past :func:`copy_limit` (the tracker may have seen some of the
    request's events by then; none is forwarded).
    """
    result = EnrichResult(message=ExportLogsServiceRequest())
    run = _Run(result, tracker, options, delivered, now)
    seen: set[Hashable] = set()
    copies = _Copies(request)
    for resource_logs in request.resource_logs:
        resource = to_dict(resource_logs.resource.attributes)  # read once, for both paths
        if pass_through and _pass_through(run, seen, resource_logs, resource):
            continue
        out = _Out(result, resource_logs, options, copies)
        for scope_logs in resource_logs.scope_logs:
            out.enter(scope_logs)
            for record in scope_logs.log_records:
                result.received += 1
                attributes = to_dict(record.attributes)  # read once: key, view and annotation use it
                key = _key(attributes)
                if not _first_time(key, seen, delivered, result):
                    continue
                body = map_body(record)  # read once: the object and the Event reader both use it
                found = migration_object_of(body)
                if found is not None:
                    run.take_object(found, record, resource, out)
                    continue
                kubevirt, tracked = run.read(resource, attributes, record, body, key)
                if kubevirt and tracked is None:
                    result.unreadable += 1  # a field of a wrong type: forwarded as it came, unenriched
                if not kubevirt and options.drop_others:
                    result.dropped_others += 1
                    continue
                if tracked is None:
                    out.add(record, None, False)
                    result.passed += 1
                    continue
                event = tracked.event
                copy = out.add(record, event.namespace, True)
                _annotate(copy, event, enriched_before=not attributes.keys().isdisjoint(ATTRIBUTES))
                result.enriched += 1
                if tracked.concluded:
                    owner = key if key is not None else _content_key(record)
                    run.summarize(tracked, owner, record, event.namespace, out)
    return result


def _pass_through(run: _Run, seen: set[Hashable], resource_logs: ResourceLogs, resource: Mapping[str, Any]) -> bool:
    """Take a ResourceLogs none of whose records can be a KubeVirt event or object, as the reference
    path would, at a fraction of its cost; False (nothing done) when it may hold one.

    Its resource's kind is not one of ``options.kinds`` and no record has a map body (the
    ``k8sobjects`` shapes): then every record passes as it came, only deduplicated, in one
    ResourceLogs like the received one (empty scopes left out). Only each record's uid and
    count are read, and the records are copied in C, not one by one.
    """
    result, options, delivered = run.result, run.options, run.delivered
    kind = resource.get(OBJECT_KIND)
    if isinstance(kind, str) and kind in options.kinds:
        return False
    scopes = []
    for scope_logs in resource_logs.scope_logs:
        records = scope_logs.log_records
        keys = []
        for record in records:
            if record.body.WhichOneof("value") == "kvlist_value":
                return False
            keys.append(_record_key(record))
        scopes.append((scope_logs, records, keys))
    parts: list[tuple[ScopeLogs, list[LogRecord] | None]] = []  # None: all its records
    for scope_logs, records, keys in scopes:
        kept = []
        for record, key in zip(records, keys, strict=True):
            result.received += 1
            if not _first_time(key, seen, delivered, result):
                continue
            kept.append(record)
        if options.drop_others:
            result.dropped_others += len(kept)
        elif kept:
            result.passed += len(kept)
            parts.append((scope_logs, None if len(kept) == len(records) else kept))
    if not parts:
        return True
    if _as_built(resource_logs, parts):  # what the reference builds is a copy: one C call
        result.request.resource_logs.add().CopyFrom(resource_logs)
        return True
    out = result.request.resource_logs.add()
    out.schema_url = resource_logs.schema_url
    out.resource.CopyFrom(resource_logs.resource)
    for scope_logs, some in parts:
        _scope_like(out, scope_logs).log_records.extend(scope_logs.log_records if some is None else some)
    return True


def _as_built(resource_logs: ResourceLogs, parts: list[tuple[ScopeLogs, list[LogRecord] | None]]) -> bool:
    """Whether the reference path would build ``resource_logs`` again as it is: every scope keeps all
    its records, the resource and scopes are set (the reference sets them), and no field of this
    version's schema is unknown at these two levels (the reference copies known fields only)."""
    if len(parts) != len(resource_logs.scope_logs) or not resource_logs.HasField("resource"):
        return False
    if len(UnknownFieldSet(resource_logs)):
        return False
    return all(kept is None and scope_logs.HasField("scope") and not len(UnknownFieldSet(scope_logs))
               for scope_logs, kept in parts)  # fmt: skip


def _record_key(record: LogRecord) -> Hashable | None:
    """:func:`_key` of the record's attributes, reading only the two it needs."""
    uid = count = None
    for kv in record.attributes:
        name = kv.key
        if name == EVENT_UID:
            uid = kv.value
        elif name == EVENT_COUNT:
            count = kv.value
    if uid is None or uid.WhichOneof("value") != "string_value" or not uid.string_value:
        return None
    return (uid.string_value, None if count is None else _hashable(value_of(count)))


@dataclass(slots=True)
class _Run:
    """What one call of :func:`enrich` shares between its steps."""

    result: EnrichResult
    tracker: MigrationTracker
    options: EnrichOptions
    delivered: Callable[[Hashable], bool]
    now: datetime | None
    summarized: set[Hashable] = field(default_factory=set)

    def read(self, resource: dict[str, Any], attributes: dict[str, Any], record: LogRecord,
             body: Mapping[str, Any] | None, key: Hashable | None) -> tuple[bool, Tracked | None]:  # fmt: skip
        """Whether ``record`` is a KubeVirt event, and its facts once the tracker saw it."""
        view = _event_view(resource, attributes, record, body, self.options.kinds)
        if view is None:
            return False, None
        try:
            event = parse_k8s_event(view)
        except TypeError:
            return True, None
        owner = key if key is not None else _content_key(record)
        return True, self.tracker.track(event, now=self.now, key=owner)

    def take_object(self, found: ObjectRecord, record: LogRecord, resource: Mapping[str, Any], out: _Out) -> None:
        """Feed a migration object to the tracker; forward it only when so configured."""
        obj = read_migration_object(found.object)
        key = ("object", obj.uid or obj.name, obj.resource_version, found.watch_type)
        tracked = self.tracker.track_object(obj, now=self.now, key=key, listing=found.listing,
                                            deleted=found.deleted)  # fmt: skip
        namespace = obj.namespace or _text(resource.get(NAMESPACE))
        if self.options.forward_objects:
            copy = out.add(record, namespace, True)
            if tracked is not None:
                _annotate(copy, tracked.event, enriched_before=False)
            self.result.enriched += 1
        else:
            self.result.objects += 1
        if tracked is not None:
            self.summarize(tracked, key, record, namespace, out)

    def summarize(self, tracked: Tracked, owner: Hashable, beside: LogRecord, namespace: str | None,
                  out: _Out) -> None:  # fmt: skip
        """Add the migration's summary beside the record that ended it (:meth:`summary`)."""
        record = self.summary(tracked, owner, lambda: beside)
        if record is not None:
            out.add(record, namespace, True)

    def summary(self, tracked: Tracked, owner: Hashable, beside: Callable[[], LogRecord]) -> LogRecord | None:
        """The migration's summary when this record is the one that ended it (again on a retry of
        that record, unless the summary was delivered), counted and its key kept; else None."""
        if not (self.options.summaries and tracked.concluded and tracked.migration is not None):
            return None
        key = summary_key(owner)
        if key in self.summarized or self.delivered(key):
            return None  # the same record twice in one request, or its summary was delivered already
        self.summarized.add(key)
        self.result.summaries += 1
        self.result.keys.append(key)
        return summary_record(tracked.migration, beside())


def _content_key(record: LogRecord) -> Hashable:
    """What identifies a record without an event uid: its bytes (a retry sends the same ones)."""
    return ("record", hashlib.sha256(record.SerializeToString(deterministic=True)).hexdigest())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _key(attributes: Mapping[str, Any]) -> Hashable | None:
    uid = attributes.get(EVENT_UID)
    if not isinstance(uid, str) or not uid:
        return None
    return (uid, _hashable(attributes.get(EVENT_COUNT)))


def _hashable(count: Any) -> Hashable:
    """A count as part of a key: a list, map or float value (never sent by the receiver, but valid
    OTLP) as its text, so that a set can hold it instead of the whole request failing, and a NaN
    (never equal to itself) still matches its retry."""
    return repr(count) if isinstance(count, list | dict | float) else count


def _event_view(
    resource: dict[str, Any],
    attributes: dict[str, Any],
    record: LogRecord,
    body: Mapping[str, Any] | None,
    kinds: frozenset[str],
) -> Mapping[str, Any] | None:
    """The record as a mapping :func:`parse_k8s_event` reads, if it is a KubeVirt event."""
    kind = resource.get(OBJECT_KIND)
    if isinstance(kind, str) and kind in kinds:  # the k8s_events receiver's shape (FACTS §1)
        # Namespace (and anything else) from the record, else from the resource: a newer receiver
        # moves k8s.namespace.name to the resource, and empty fields arrive as "".
        view = {**resource, **{k: v for k, v in attributes.items() if v != ""}}
        text = record.body
        view["body"] = text.string_value if text.WhichOneof("value") == "string_value" else ""
        view["severity_text"] = record.severity_text or _TYPE_OF_SEVERITY.get(record.severity_number, "")
        view["timestamp"] = record.time_unix_nano or record.observed_time_unix_nano
        return view
    if body is None:  # the k8sobjects receiver's shape: {"type": …, "object": Event}
        return None
    event = body.get("object") if isinstance(body.get("object"), dict) else body
    if not isinstance(event, dict) or event.get("kind") != "Event":
        return None
    involved = event.get("involvedObject") or event.get("regarding")
    if not isinstance(involved, dict) or not isinstance(involved.get("kind"), str) or involved["kind"] not in kinds:
        return None
    return event


def _resource_for(
    request: ExportLogsServiceRequest, source: ResourceLogs, group: tuple[str | None, bool], options: EnrichOptions
) -> ResourceLogs:
    """A new ResourceLogs in ``request`` like ``source``; for KubeVirt records, with the service
    name and the records' namespace."""
    namespace, kubevirt = group
    out = request.resource_logs.add()
    out.schema_url = source.schema_url
    out.resource.CopyFrom(source.resource)
    if kubevirt:
        set_value(out.resource.attributes, SERVICE_NAME, options.service_name)
        if namespace is not None:
            set_value(out.resource.attributes, NAMESPACE, namespace)
    return out


def _scope_like(out: ResourceLogs, source: ScopeLogs) -> ScopeLogs:
    scope = out.scope_logs.add()
    scope.scope.CopyFrom(source.scope)
    scope.schema_url = source.schema_url
    return scope


def _facts(event: MigrationEvent) -> list[tuple[str, Any]]:
    """The record attributes ``event`` gives: those of :data:`ATTRIBUTES` whose value is known."""
    return [(attribute, value) for attribute, name in ATTRIBUTES.items() if (value := getattr(event, name)) not in
            (None, "")]  # fmt: skip


def _annotate(record: LogRecord, event: MigrationEvent, *, enriched_before: bool) -> None:
    facts = _facts(event)
    if enriched_before:  # passed through otelkv already: replace in place
        for attribute, value in facts:
            set_value(record.attributes, attribute, value)
    else:
        add_values(record.attributes, facts)
