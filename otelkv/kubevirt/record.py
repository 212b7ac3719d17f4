"""What the tracker remembers of one migration, and the pure steps that combine such records.

Internal to :mod:`otelkv.kubevirt` (the tracker and its saved state use it); the public names are
:class:`Migration` (a snapshot) and :class:`Tracked` (what one observation gave).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from .event_builders import replacer
from .model import TERMINAL_PHASES, MigrationEvent
from .objects import MigrationObject
from .trigger import FROM_NAME, FROM_OBJECT, trigger_of_name

NEVER: Final = datetime.max.replace(tzinfo=UTC)
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: The phases a migration starts in: the earliest of them is its start.
START_PHASES: Final = frozenset({"Pending", "Scheduling", "Scheduled"})
#: Facts an object states; once set from one, event text no longer changes them.
OBJECT_FACTS: Final = ("vm", "source", "target", "pod", "failure")


class _Silent:
    """``concluded_by`` of a migration first seen already over: no summary is owed for it."""

    def __repr__(self) -> str:
        return "SILENT"


SILENT: Final = _Silent()


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """A snapshot of what the tracker knows about one migration."""

    namespace: str | None
    vm_name: str | None
    migration_name: str | None
    migration_uid: str | None
    phase: str | None
    source_node: str | None
    target_node: str | None
    target_pod: str | None
    failure_reason: str | None
    #: When it started: its first Pending/Scheduling/Scheduled event, or KubeVirt's own time.
    started: datetime | None
    #: When it ended: KubeVirt's own time, else its earliest terminal event (the handler's own;
    #: the controller's word on the same end comes a second or so later).
    ended: datetime | None
    events: int
    mode: str | None = None
    abort_status: str | None = None
    #: Who started it: ``evacuation`` | ``workload-update`` | ``user`` | ``other``
    #: (:mod:`otelkv.kubevirt.trigger`); None when neither its object nor its name says.
    trigger: str | None = None
    #: Where ``trigger`` was read: ``object`` (its annotations) or ``name`` (its generateName).
    trigger_source: str | None = None
    #: The cluster it ran in (resource attribute ``k8s.cluster.name``), when the collector says.
    cluster: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from its start to its end, when both were seen or stated by KubeVirt."""
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())


@dataclass(frozen=True, slots=True)
class Tracked:
    """What one observation gave: the event with its migration's facts, whether this observation
    (by its key) is the one that made the migration terminal, and then the migration as it ended
    (``migration`` is None otherwise: a snapshot per event would cost for nothing)."""

    event: MigrationEvent
    migration: Migration | None = None
    concluded: bool = False


class Record:
    """The mutable facts of one migration (slotted: thousands are kept)."""

    __slots__ = (
        "abort",
        "cluster",
        "concluded_as",
        "concluded_by",
        "events",
        "failure",
        "first_end",
        "first_seen",
        "fixed",
        "key",
        "mode",
        "name",
        "namespace",
        "obj_end",
        "obj_start",
        "phase",
        "pod",
        "size",
        "source",
        "started",
        "target",
        "terminal_at",
        "touched",
        "trigger",
        "uid",
        "vm",
    )

    def __init__(self, key: int, namespace: str | None, cluster: str | None = None) -> None:
        self.key = key
        self.namespace = namespace
        #: The cluster it runs in (``k8s.cluster.name``): part of every index key.
        self.cluster = cluster
        #: Who started it, as its object's annotations say (None until the object was seen).
        self.trigger: str | None = None
        self.vm: str | None = None
        self.name: str | None = None
        self.uid: str | None = None
        self.phase: str | None = None
        self.source: str | None = None
        self.target: str | None = None
        self.pod: str | None = None
        self.failure: str | None = None
        self.mode: str | None = None
        self.abort: str | None = None
        self.first_seen: datetime | None = None
        self.started: datetime | None = None
        #: Its latest terminal event (how long after its end a late word still joins it) and its
        #: earliest (when it ended, if KubeVirt's object does not say).
        self.terminal_at: datetime | None = None
        self.first_end: datetime | None = None
        self.obj_start: datetime | None = None
        self.obj_end: datetime | None = None
        self.touched: datetime | None = None
        self.events = 0
        #: Bytes counted for it against the tracker's ``max_bytes`` (the tracker keeps it).
        self.size = 0
        self.fixed: set[str] = set()
        self.concluded_by: Hashable | None = None
        #: The migration as it was when it concluded: a retry's summary says the very same.
        self.concluded_as: Migration | None = None

    @property
    def start(self) -> datetime | None:
        return self.obj_start or self.started

    @property
    def end(self) -> datetime | None:
        """KubeVirt's own end time, else the earliest terminal event (one rule: summary, table, docs)."""
        return self.obj_end or self.first_end

    def trigger_of(self, name: str | None = None) -> tuple[str | None, str | None]:
        """(trigger, where it was read): the object's word, else its name's (or ``name``'s) prefix."""
        if self.trigger is not None:
            return self.trigger, FROM_OBJECT
        found = trigger_of_name(self.name or name)
        return found, FROM_NAME if found is not None else None


def plus(when: datetime, delta: timedelta) -> datetime:
    """``when + delta``, saturating instead of overflowing near the end of the calendar."""
    return when + delta if NEVER - when > delta else NEVER


def compatible(a: Record, b: Record) -> bool:
    """No fact of one contradicts a fact of the other."""
    pairs = ((a.uid, b.uid), (a.name, b.name), (a.source, b.source), (a.target, b.target))
    source, target = a.source or b.source, a.target or b.target
    return all(x is None or y is None or x == y for x, y in pairs) and (source is None or source != target)


def absorb(
    into: Record, *, source: str | None, target: str | None, pod: str | None, failure: str | None, phase: str | None
) -> None:
    """Take facts ``into`` doesn't have yet; never the same node twice; a terminal phase stays."""
    if source and into.source is None and source != into.target:
        into.source = source
    if target and into.target is None and target != into.source:
        into.target = target
    into.pod = into.pod or pod
    into.failure = into.failure or failure
    if phase is not None and (into.phase not in TERMINAL_PHASES or phase in TERMINAL_PHASES):
        into.phase = phase


def _earliest(*times: datetime | None) -> datetime | None:
    return min((t for t in times if t is not None), default=None)


def merge(*, into: Record, other: Record) -> None:
    into.uid = into.uid or other.uid
    absorb(into, source=other.source, target=other.target, pod=other.pod, failure=other.failure, phase=other.phase)
    into.first_seen = _earliest(into.first_seen, other.first_seen)
    into.started = _earliest(into.started, other.started)
    into.obj_start = into.obj_start or other.obj_start
    into.obj_end = into.obj_end or other.obj_end
    into.terminal_at = max((t for t in (into.terminal_at, other.terminal_at) if t is not None), default=None)
    into.first_end = _earliest(into.first_end, other.first_end)
    into.trigger = into.trigger or other.trigger
    if into.concluded_by is None:
        into.concluded_by, into.concluded_as = other.concluded_by, other.concluded_as
    into.mode, into.abort = into.mode or other.mode, into.abort or other.abort
    into.fixed |= other.fixed
    into.events += other.events


def fill(event: MigrationEvent, record: Record, stamp: datetime | None) -> MigrationEvent:
    """A copy of ``event`` with what ``record`` knows of its migration (one call a field set)."""
    fixed = record.fixed
    vm, pod, target, source = event.vm_name, event.target_pod, event.target_node, event.source_node
    own_target, own_source = target, source
    if fixed:
        if "vm" in fixed or vm is None:
            vm = record.vm
        if "pod" in fixed or pod is None:
            pod = record.pod
        if "target" in fixed or target is None:
            target = record.target
        if "source" in fixed or source is None:
            source = record.source
    else:
        vm = vm if vm is not None else record.vm
        pod = pod if pod is not None else record.pod
        target = target if target is not None else record.target
        source = source if source is not None else record.source
    if source is not None and source == target:  # one side came from the record: the event's own wins
        if own_source is None or "target" in fixed:
            source = None
        else:
            target = own_target
    phase = event.phase
    failure = event.failure_reason
    if phase == "Failed" and ("failure" in fixed or failure is None):
        failure = record.failure
    duration = None
    if phase in TERMINAL_PHASES:
        start, end = record.start, record.end or stamp  # KubeVirt's own times first, else the earliest end
        if start is not None and end is not None:
            duration = max(0.0, (end - start).total_seconds())
    trigger, trigger_source = record.trigger_of(event.migration_name)
    name, uid, cluster = event.migration_name or record.name, event.migration_uid or record.uid, event.cluster
    return _filled(
        event,
        vm,
        name,
        uid,
        pod,
        source,
        target,
        failure,
        duration,
        cluster or record.cluster,
        trigger,
        trigger_source,
    )


#: What :func:`fill` sets, in the order it passes them.
_filled: Final = replacer(
    "vm_name",
    "migration_name",
    "migration_uid",
    "target_pod",
    "source_node",
    "target_node",
    "failure_reason",
    "duration_seconds",
    "cluster",
    "trigger",
    "trigger_source",
)


def snapshot(record: Record) -> Migration:
    trigger, trigger_source = record.trigger_of()
    return Migration(
        namespace=record.namespace,
        vm_name=record.vm,
        migration_name=record.name,
        migration_uid=record.uid,
        phase=record.phase,
        source_node=record.source,
        target_node=record.target,
        target_pod=record.pod,
        failure_reason=record.failure,
        started=record.start,
        ended=record.end,
        events=record.events,
        mode=record.mode,
        abort_status=record.abort,
        trigger=trigger,
        trigger_source=trigger_source,
        cluster=record.cluster,
    )


# -- which record an event belongs to ---------------------------------------------------------


def contradicts(record: Record, event: MigrationEvent) -> bool:
    """Whether ``event`` names another migration, or other nodes, than ``record``."""
    return bool(
        (event.migration_uid and record.uid not in (None, event.migration_uid))
        or (event.migration_name and record.name not in (None, event.migration_name))
        or (event.source_node and record.source not in (None, event.source_node))
        or (event.target_node and record.target not in (None, event.target_node))
    )


def trails(record: Record, event: MigrationEvent, stamp: datetime | None, trailing: timedelta) -> bool:
    """Whether a phase-less event belongs to ``record``: while it runs, or just after its end."""
    if contradicts(record, event):
        return False
    if record.terminal_at is None:
        return True
    return stamp is not None and stamp <= plus(record.terminal_at, trailing)


def joins(record: Record, event: MigrationEvent, stamp: datetime | None, window: timedelta) -> bool:
    """Whether an event that does not name its migration belongs to ``record``."""
    if contradicts(record, event):
        return False
    if record.terminal_at is None:
        # Over by its object's word, which did not say when (KubeVirt < v0.59): only a word on that
        # end still joins it; a new migration's first steps do not.
        return record.phase not in TERMINAL_PHASES or event.phase in TERMINAL_PHASES
    if stamp is None:
        return False
    if stamp <= record.terminal_at:
        return event.phase not in START_PHASES  # happened before the end, arrived after it
    # After the end, only the other side's word on the outcome still belongs to it.
    return event.phase in TERMINAL_PHASES and stamp <= plus(record.terminal_at, window)


def same_migration(named: Record, vm_only: Record, window: timedelta) -> bool:
    """Whether a VM-only record is the named migration seen from the VMI's side."""
    if not compatible(named, vm_only):
        return False
    if vm_only.terminal_at is None:
        return named.terminal_at is None or (vm_only.first_seen or EPOCH) <= named.terminal_at
    if named.first_seen is None:
        return False
    if named.first_seen <= vm_only.terminal_at:
        return True  # the named one was under way before the VMI's side saw the end
    # Seen only at its end: the other side's word on the same outcome, within the window.
    only_end = named.started is None and named.first_seen == named.terminal_at
    return only_end and named.first_seen <= plus(vm_only.terminal_at, window)


def take_object_facts(record: Record, obj: MigrationObject, started: datetime | None, ended: datetime | None) -> None:
    """Make the object's facts the record's: KubeVirt's word beats what text suggested (``started``
    and ``ended``: the object's times, where they are plausible)."""
    for fact, value in (
        ("vm", obj.vm_name),
        ("source", obj.source_node),
        ("target", obj.target_node),
        ("pod", obj.target_pod),
        ("failure", obj.failure_reason),
    ):
        if value is not None:
            setattr(record, fact, value)
            record.fixed.add(fact)
    if record.source is not None and record.source == record.target:  # text said otherwise: drop it
        if obj.source_node is None:
            record.source = None
        else:
            record.target = None
    record.trigger = obj.trigger or record.trigger
    record.mode = obj.mode or record.mode
    record.abort = obj.abort_status or record.abort
    if obj.phase is not None and (record.phase not in TERMINAL_PHASES or obj.terminal):
        record.phase = obj.phase
    record.obj_start = started or record.obj_start
    if obj.terminal:
        record.obj_end = ended or record.obj_end
        if record.obj_end is not None:
            record.terminal_at = max(record.terminal_at or record.obj_end, record.obj_end)
            record.first_end = record.first_end or record.obj_end
