"""Follow one live migration across its events, in bounded memory.

KubeVirt tells one migration's story on two objects: the VirtualMachineInstanceMigration
(controller events, named after the migration) and the VirtualMachineInstance (virt-handler
events, named after the VM). No single event holds all the facts: the source node is only the
host of ``Migrating``, the target only in ``PreparingTarget`` or ``Migrated``, the VM name of a
migration object only in its target pod's name. The tracker joins them.

Rules that keep facts from leaking between migrations:

- An event naming a migration (its object, ``Created Migration …``, a failure's ``uid``) joins
  that migration and no other.
- An event naming only the VM joins the VM's current migration while it runs. After the
  migration ended, only events that happened before its end (late, out-of-order arrivals) and
  a second word on its outcome within ``reorder_window`` still join it. Otherwise, or when its
  nodes contradict the current migration's, it starts a new one.
- A record never holds the same node as source and target.

Time is event time (the latest timestamp seen), never a clock: the tracker stays sans-I/O.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from .model import TERMINAL_PHASES, MigrationEvent

_NEVER: Final = datetime.max.replace(tzinfo=UTC)
_START_PHASES: Final = frozenset({"Pending", "Scheduling", "Scheduled"})


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
    started: datetime | None
    ended: datetime | None
    events: int

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from the first event to the terminal one, when both times are known."""
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())


class _Record:
    __slots__ = (
        "events",
        "failure",
        "first_seen",
        "key",
        "name",
        "namespace",
        "phase",
        "pod",
        "source",
        "target",
        "terminal_at",
        "touched",
        "uid",
        "vm",
    )  # fmt: skip

    def __init__(self, key: int, namespace: str | None) -> None:
        self.key = key
        self.namespace = namespace
        self.vm: str | None = None
        self.name: str | None = None
        self.uid: str | None = None
        self.phase: str | None = None
        self.source: str | None = None
        self.target: str | None = None
        self.pod: str | None = None
        self.failure: str | None = None
        self.first_seen: datetime | None = None
        self.terminal_at: datetime | None = None
        self.touched: datetime | None = None
        self.events = 0


_Key = tuple[str | None, str]


class MigrationTracker:
    """Carries facts across the events of one migration; bounded by entries and by age.

    ``max_entries`` bounds the migrations remembered (the least recently seen go first);
    ``ttl`` forgets a migration no event has touched for that long, in event time;
    ``reorder_window`` is how long after a migration's end another terminal event (the
    controller's after the handler's, or the other way round) still joins it.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: timedelta = timedelta(hours=6),
        reorder_window: timedelta = timedelta(seconds=10),
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive int, got {max_entries!r}")
        for name, value in (("ttl", ttl), ("reorder_window", reorder_window)):
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ValueError(f"{name} must be a non-negative timedelta, got {value!r}")
        self._max = max_entries
        self._ttl = ttl
        self._window = reorder_window
        self._now: datetime | None = None
        self._ids = itertools.count()
        self._records: OrderedDict[int, _Record] = OrderedDict()
        self._by_vm: dict[_Key, _Record] = {}
        self._by_name: dict[_Key, _Record] = {}
        self._by_uid: dict[_Key, _Record] = {}

    def __len__(self) -> int:
        """How many migrations are remembered."""
        return len(self._records)

    def observe(self, event: MigrationEvent) -> MigrationEvent:
        """Record ``event`` and return it with what earlier events of its migration revealed."""
        if not isinstance(event, MigrationEvent):
            raise TypeError(f"event must be a MigrationEvent, got {type(event).__name__}")
        if event.timestamp is not None and (self._now is None or event.timestamp > self._now):
            self._now = event.timestamp
        record = self._record_for(event) if event.is_migration else None
        if record is None:
            return event
        self._learn(record, event)
        self._evict()
        return _fill(event, record)

    def migrations(self) -> tuple[Migration, ...]:
        """Snapshots of the migrations remembered, oldest first."""
        records = sorted(self._records.values(), key=lambda r: (r.first_seen or _NEVER, r.key))
        return tuple(_snapshot(r) for r in records)

    # -- joining ---------------------------------------------------------------------------

    def _record_for(self, event: MigrationEvent) -> _Record | None:
        ns, vm = event.namespace, event.vm_name
        uid, name = event.migration_uid, event.migration_name
        found = (self._by_uid.get((ns, uid)) if uid else None) or (self._by_name.get((ns, name)) if name else None)
        if found is not None:
            return found
        current = self._by_vm.get((ns, vm)) if vm else None
        if current is not None and self._joins(current, event):
            return current
        if not (uid or name or vm):
            return None
        record = _Record(next(self._ids), ns)
        self._records[record.key] = record
        return record

    def _joins(self, record: _Record, event: MigrationEvent) -> bool:
        """Whether an event that does not name its migration belongs to ``record``."""
        if (event.migration_uid and record.uid not in (None, event.migration_uid)) or (
            event.migration_name and record.name not in (None, event.migration_name)
        ):
            return False
        if (event.source_node and record.source not in (None, event.source_node)) or (
            event.target_node and record.target not in (None, event.target_node)
        ):
            return False
        if record.terminal_at is None:
            return True
        if event.timestamp is None:
            return False
        if event.timestamp <= record.terminal_at:
            return event.phase not in _START_PHASES  # happened before the end, arrived after it
        # After the end, only the other side's word on the outcome still belongs to it.
        return event.phase in TERMINAL_PHASES and event.timestamp <= record.terminal_at + self._window

    # -- learning --------------------------------------------------------------------------

    def _learn(self, record: _Record, event: MigrationEvent) -> None:
        ns = record.namespace
        if event.migration_uid and record.uid is None:
            record.uid = event.migration_uid
            self._by_uid[(ns, record.uid)] = record
        if event.migration_name and record.name is None:
            record.name = event.migration_name
            self._by_name[(ns, record.name)] = record
        if event.vm_name and record.vm is None:
            record.vm = event.vm_name
            self._adopt_vm(record)
        elif record.vm and (ns, record.vm) not in self._by_vm:
            self._by_vm[(ns, record.vm)] = record
        _absorb(record, source=event.source_node, target=event.target_node, pod=event.target_pod,
                failure=event.failure_reason, phase=event.phase)  # fmt: skip
        stamp = event.timestamp
        if stamp is not None:
            record.first_seen = min(record.first_seen or stamp, stamp)
            if event.phase in TERMINAL_PHASES:
                record.terminal_at = max(record.terminal_at or stamp, stamp)
        record.touched = max(filter(None, (record.touched, stamp, self._now)), default=None)
        record.events += 1
        self._records.move_to_end(record.key)

    def _adopt_vm(self, record: _Record) -> None:
        """Make ``record`` the VM's current migration, merging a VM-only record of the same one."""
        assert record.vm is not None
        key = (record.namespace, record.vm)
        current = self._by_vm.get(key)
        if current is not None and current is not record:
            named = record.name is not None or record.uid is not None
            if named and current.name is None and current.terminal_at is None and _compatible(record, current):
                _merge(into=record, other=current)
                self._drop(current)
            elif current.terminal_at is None and current.name is not None:
                return  # another migration of this VM still runs; it stays the current one
        self._by_vm[key] = record

    # -- bounding --------------------------------------------------------------------------

    def _evict(self) -> None:
        while len(self._records) > self._max:
            self._drop(next(iter(self._records.values())))
        if self._now is None:
            return
        horizon = self._now - self._ttl
        while self._records:
            oldest = next(iter(self._records.values()))
            if oldest.touched is None or oldest.touched >= horizon:
                break
            self._drop(oldest)

    def _drop(self, record: _Record) -> None:
        self._records.pop(record.key, None)
        ns = record.namespace
        for index, value in (
            (self._by_vm, record.vm),
            (self._by_name, record.name),
            (self._by_uid, record.uid),
        ):
            if value is not None and index.get((ns, value)) is record:
                del index[(ns, value)]


def _compatible(a: _Record, b: _Record) -> bool:
    """No fact of one contradicts a fact of the other."""
    pairs = ((a.uid, b.uid), (a.name, b.name), (a.source, b.source), (a.target, b.target))
    source, target = a.source or b.source, a.target or b.target
    return all(x is None or y is None or x == y for x, y in pairs) and (source is None or source != target)


def _absorb(
    into: _Record, *, source: str | None, target: str | None, pod: str | None, failure: str | None, phase: str | None
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


def _merge(*, into: _Record, other: _Record) -> None:
    into.uid = into.uid or other.uid
    _absorb(into, source=other.source, target=other.target, pod=other.pod, failure=other.failure, phase=other.phase)
    firsts = [t for t in (into.first_seen, other.first_seen) if t is not None]
    into.first_seen = min(firsts, default=None)
    ends = [t for t in (into.terminal_at, other.terminal_at) if t is not None]
    into.terminal_at = max(ends, default=None)
    into.events += other.events


def _fill(event: MigrationEvent, record: _Record) -> MigrationEvent:
    target = event.target_node or record.target
    source = event.source_node or record.source
    if source is not None and source == target:  # one side came from the record: the event's own wins
        if event.source_node is None:
            source = None
        else:
            target = event.target_node
    failure = event.failure_reason
    if event.phase == "Failed":
        failure = failure or record.failure
    duration = None
    if event.phase in TERMINAL_PHASES and event.timestamp is not None and record.first_seen is not None:
        duration = max(0.0, (event.timestamp - record.first_seen).total_seconds())
    return replace(
        event,
        vm_name=event.vm_name or record.vm,
        migration_name=event.migration_name or record.name,
        migration_uid=event.migration_uid or record.uid,
        target_pod=event.target_pod or record.pod,
        source_node=source,
        target_node=target,
        failure_reason=failure,
        duration_seconds=duration,
    )


def _snapshot(record: _Record) -> Migration:
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
        started=record.first_seen,
        ended=record.terminal_at,
        events=record.events,
    )
