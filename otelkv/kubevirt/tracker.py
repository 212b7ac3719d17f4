"""Follow one live migration across its events and objects, in bounded memory.

KubeVirt tells one migration's story on two objects: the VirtualMachineInstanceMigration
(controller events, named after the migration) and the VirtualMachineInstance (virt-handler
events, named after the VM). No single event holds all the facts: the source node is only the
host of ``Migrating``, the target only in ``PreparingTarget`` or ``Migrated``, the VM name of a
migration object only in its target pod's name. The tracker joins them; the migration object
itself (:meth:`MigrationTracker.track_object`), when the collector sends it, states the facts
outright and they win over anything read from event text.

Rules that keep facts from leaking between migrations, and from being invented:

- An event naming a migration (its object, ``Created Migration …``, a failure's ``uid``) joins
  that migration and no other.
- A migration starts at its first event that names a phase. An event without a phase never opens
  one: it joins its VM's current migration while that runs, or the latest one within
  ``trailing_window`` after its end (``shrank PodDisruptionBudget`` ~4 s after); otherwise it is
  left with the VM name it carries.
- An event naming only the VM joins the VM's current migration while it runs. After the
  migration ended, only events that happened before its end (late, out-of-order arrivals) and
  a second word on its outcome within ``reorder_window`` still join it. Otherwise, or when its
  nodes contradict the current migration's, it starts a new one.
- A duration is written only when the start was seen (a ``Pending``/``Scheduling``/``Scheduled``
  event) or KubeVirt's object states it; a migration first seen half-way has none.
- A record never holds the same node as source and target.

Time is event time (the latest plausible timestamp seen), never a clock: the tracker stays
sans-I/O. A caller that knows the arrival time passes it as ``now``: an event stamped more than
``clock_skew`` after it is treated as undated, so one far-future stamp cannot age out the rest.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from . import state
from .model import TERMINAL_PHASES, MigrationEvent
from .objects import MigrationObject
from .record import (
    EPOCH,
    NEVER,
    SILENT,
    START_PHASES,
    Migration,
    Record,
    Tracked,
    absorb,
    fill,
    joins,
    merge,
    same_migration,
    snapshot,
    take_object_facts,
    trails,
)

#: What one remembered migration takes beside its strings: the record's slots, its times, its
#: snapshot when it ends and its entries in three indexes (measured with tracemalloc: ~650 bytes
#: a finished migration, strings aside).
RECORD_OVERHEAD: Final = 1024
#: An index key: (cluster, namespace, name or uid) — one Loki may hear many clusters.
_Key = tuple[str | None, str | None, str]

__all__ = ["SILENT", "Migration", "MigrationTracker", "Tracked"]


class MigrationTracker:
    """Carries facts across the events of one migration; bounded by entries, bytes and age.

    ``max_entries`` bounds the migrations remembered (the least recently seen go first), and
    ``max_bytes`` the memory they take (estimated per migration: :data:`RECORD_OVERHEAD` plus its
    strings, each bounded when read: :data:`~otelkv.kubevirt.names.MAX_NAME`);
    ``ttl`` forgets a migration no event has touched for that long, in event time;
    ``reorder_window`` is how long after a migration's end another terminal event (the
    controller's after the handler's, or the other way round) still joins it;
    ``trailing_window`` is how long after its end an event without a phase still joins it;
    ``clock_skew`` is how far past the ``now`` a caller passes an event time may lie.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 32 * 1024 * 1024,
        ttl: timedelta = timedelta(hours=6),
        reorder_window: timedelta = timedelta(seconds=10),
        trailing_window: timedelta = timedelta(seconds=60),
        clock_skew: timedelta = timedelta(minutes=10),
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive int, got {max_entries!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < RECORD_OVERHEAD:
            raise ValueError(f"max_bytes must be an int of at least {RECORD_OVERHEAD}, got {max_bytes!r}")
        for name, value in (
            ("ttl", ttl),
            ("reorder_window", reorder_window),
            ("trailing_window", trailing_window),
            ("clock_skew", clock_skew),
        ):
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ValueError(f"{name} must be a non-negative timedelta, got {value!r}")
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._ttl = ttl
        self._window = reorder_window
        self._trailing = trailing_window
        self._skew = clock_skew
        self._now: datetime | None = None
        #: The clock of the state restored at start (None: nothing was restored).
        self._restored_at: datetime | None = None
        self._ids = itertools.count()
        self._records: OrderedDict[int, Record] = OrderedDict()
        self._by_vm: dict[_Key, Record] = {}
        self._by_name: dict[_Key, Record] = {}
        self._by_uid: dict[_Key, Record] = {}

    def __len__(self) -> int:
        """How many migrations are remembered."""
        return len(self._records)

    def observe(self, event: MigrationEvent, *, now: datetime | None = None) -> MigrationEvent:
        """Record ``event`` and return it with what earlier events of its migration revealed."""
        return self.track(event, now=now).event

    def track(self, event: MigrationEvent, *, now: datetime | None = None, key: Hashable | None = None) -> Tracked:
        """Record ``event`` (``key``: what identifies the record that carried it, for summaries)."""
        if not isinstance(event, MigrationEvent):
            raise TypeError(f"event must be a MigrationEvent, got {type(event).__name__}")
        stamp = self._plausible(event.timestamp, now)
        record = self._record_for(event, stamp) if event.is_migration else None
        if record is None:
            return Tracked(event)
        self._learn(record, event, stamp)
        concluded = self._conclude(record, key, silent=False)
        self._account(record)
        self._evict()
        return _tracked(event, record, stamp, concluded)

    def track_object(
        self,
        obj: MigrationObject,
        *,
        now: datetime | None = None,
        key: Hashable | None = None,
        listing: bool = False,
        deleted: bool = False,
    ) -> Tracked | None:
        """Take the facts of a migration object; they win over facts read from events.

        ``listing``: the object comes from a list (pull mode, a watch's initial state), not from a
        change — a migration first seen that way already over owes no summary, unless it ended
        after the clock of a state this tracker restored (it ended while otelkv was down: its
        summary is owed once). ``deleted``: a deletion; it adds facts to a known migration and
        opens none. None when the object names no migration (or a deletion names an unknown one).

        An object that says the migration is over but not when (KubeVirt before v0.59 writes no
        ``migrationState``) does not conclude it: the terminal events of that end, a second
        apart, do, and the summary has the target node they name.
        """
        if not isinstance(obj, MigrationObject):
            raise TypeError(f"obj must be a MigrationObject, got {type(obj).__name__}")
        if not (obj.uid or obj.name):
            return None
        event = obj.as_event()
        stamp = self._plausible(obj.latest, now)
        known = self._named(obj.cluster, obj.namespace, obj.uid, obj.name)
        if known is None and deleted:
            return None
        record = known or self._new(obj.namespace, obj.cluster)
        self._learn(record, event, stamp, ends=False)
        self._fix(record, obj, now)
        silent = known is None and (deleted or (listing and not self._ended_while_down(record)))
        wait = not silent and obj.terminal and record.end is None
        concluded = self._conclude(record, key, silent=silent, wait=wait)
        self._account(record)
        self._evict()
        return _tracked(event, record, stamp, concluded)

    def migrations(self) -> tuple[Migration, ...]:
        """Snapshots of the migrations remembered, oldest first."""
        records = sorted(self._records.values(), key=lambda r: (r.start or r.first_seen or NEVER, r.key))
        return tuple(snapshot(r) for r in records)

    # -- saving and restoring ---------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """What the tracker knows, as JSON-ready data (least recently seen first)."""
        return state.dump(self._records.values(), self._now)

    def restore_state(self, saved: Mapping[str, Any]) -> int:
        """Take back what :meth:`export_state` gave (into an empty tracker); how many migrations.

        ValueError naming the problem when ``saved`` is not such data; the tracker is then unchanged.
        """
        records, now = state.load(saved, self._ids)
        for record in records[-self._max :]:
            self._records[record.key] = record
            self._account(record)
            where = (record.cluster, record.namespace)
            for index, value in ((self._by_uid, record.uid), (self._by_name, record.name), (self._by_vm, record.vm)):
                if value is not None:
                    index[(*where, value)] = record
        if now is not None and (self._now is None or now > self._now):
            self._now = now
        self._restored_at = now
        self._evict()
        return len(self._records)

    # -- time ------------------------------------------------------------------------------

    def _plausible(self, stamp: datetime | None, now: datetime | None) -> datetime | None:
        """``stamp`` if it can be a real event time (else None); advances the tracker's clock."""
        if stamp is None or stamp < EPOCH or stamp.year >= 9999:
            return None  # Go's zero time, a broken clock: unknown rather than an overflow later
        if now is not None and stamp > now + self._skew:
            return None
        if self._now is None or stamp > self._now:
            self._now = stamp
        return stamp

    # -- joining ---------------------------------------------------------------------------

    def _named(self, cluster: str | None, ns: str | None, uid: str | None, name: str | None) -> Record | None:
        return (self._by_uid.get((cluster, ns, uid)) if uid else None) or (
            self._by_name.get((cluster, ns, name)) if name else None
        )

    def _new(self, namespace: str | None, cluster: str | None) -> Record:
        record = Record(next(self._ids), namespace, cluster)
        self._records[record.key] = record
        return record

    def _record_for(self, event: MigrationEvent, stamp: datetime | None) -> Record | None:
        cluster, ns, vm = event.cluster, event.namespace, event.vm_name
        found = self._named(cluster, ns, event.migration_uid, event.migration_name)
        if found is not None:
            return found
        current = self._by_vm.get((cluster, ns, vm)) if vm else None
        if event.phase is None:  # never opens a migration; joins the current or just-ended one
            if current is not None and trails(current, event, stamp, self._trailing):
                return current
            return None
        if current is not None and joins(current, event, stamp, self._window):
            return current
        if not (event.migration_uid or event.migration_name or vm):
            return None
        return self._new(ns, cluster)

    # -- learning --------------------------------------------------------------------------

    def _learn(self, record: Record, event: MigrationEvent, stamp: datetime | None, *, ends: bool = True) -> None:
        """Take ``event``'s facts; ``ends``: a terminal phase at ``stamp`` is when it ended (an
        event's; an object's times are its own, :meth:`_fix`)."""
        where = (record.cluster, record.namespace)
        if event.migration_uid and record.uid is None:
            record.uid = event.migration_uid
            self._by_uid[(*where, record.uid)] = record
        if event.migration_name and record.name is None:
            record.name = event.migration_name
            self._by_name[(*where, record.name)] = record
        if stamp is not None and event.phase is not None:
            record.first_seen = min(record.first_seen or stamp, stamp)
            if event.phase in START_PHASES:
                record.started = min(record.started or stamp, stamp)
            if ends and event.phase in TERMINAL_PHASES:
                record.terminal_at = max(record.terminal_at or stamp, stamp)
                record.first_end = min(record.first_end or stamp, stamp)
        if event.vm_name and record.vm is None:
            record.vm = event.vm_name
            self._adopt_vm(record)
        elif record.vm and (*where, record.vm) not in self._by_vm:
            self._by_vm[(*where, record.vm)] = record
        absorb(
            record,
            source=event.source_node,
            target=event.target_node,
            pod=event.target_pod,
            failure=event.failure_reason,
            phase=event.phase,
        )
        record.touched = max(filter(None, (record.touched, stamp, self._now)), default=None)
        record.events += 1
        self._records.move_to_end(record.key)

    def _fix(self, record: Record, obj: MigrationObject, now: datetime | None) -> None:
        """Make the object's facts the record's: KubeVirt's word beats what text suggested."""
        take_object_facts(record, obj, self._plausible(obj.started, now), self._plausible(obj.ended, now))

    def _ended_while_down(self, record: Record) -> bool:
        """Whether ``record`` (a listed object's) ended after the clock of the state restored at
        start: while no otelkv ran. Without a restored state, nothing did (no flood of history)."""
        return self._restored_at is not None and record.end is not None and record.end > self._restored_at

    def _conclude(self, record: Record, key: Hashable | None, *, silent: bool, wait: bool = False) -> bool:
        """Whether the observation keyed ``key`` made ``record`` terminal (with its VM known);
        ``wait``: not this observation (an object that does not say when it ended)."""
        if record.concluded_by is None and record.phase in TERMINAL_PHASES and record.vm and not wait:
            record.concluded_by = SILENT if silent else (key if key is not None else object())
            record.concluded_as = None if silent else snapshot(record)
            return not silent
        return key is not None and record.concluded_by == key

    def _adopt_vm(self, record: Record) -> None:
        """Make ``record`` the VM's current migration, merging a VM-only record of the same one."""
        assert record.vm is not None
        key = (record.cluster, record.namespace, record.vm)
        current = self._by_vm.get(key)
        if current is not None and current is not record:
            named = record.name is not None or record.uid is not None
            if named and current.name is None and current.uid is None and same_migration(record, current, self._window):
                merge(into=record, other=current)
                self._drop(current)
            elif current.terminal_at is None and current.name is not None:
                return  # another migration of this VM still runs; it stays the current one
            elif record.terminal_at is not None and (
                current.terminal_at is None or (current.first_seen or EPOCH) > record.terminal_at
            ):
                return  # an old migration (a listed object) does not displace a newer one
        self._by_vm[key] = record

    # -- bounding --------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        """The memory the remembered migrations take, as estimated against ``max_bytes``."""
        return self._bytes

    def _account(self, record: Record) -> None:
        size = RECORD_OVERHEAD + sum(
            map(
                len,
                filter(
                    None,
                    (
                        record.cluster,
                        record.namespace,
                        record.vm,
                        record.name,
                        record.uid,
                        record.phase,
                        record.source,
                        record.target,
                        record.pod,
                        record.failure,
                        record.mode,
                        record.abort,
                        record.trigger,
                    ),
                ),
            )
        )
        self._bytes += size - record.size
        record.size = size

    def _evict(self) -> None:
        while len(self._records) > self._max or self._bytes > self._max_bytes:
            self._drop(next(iter(self._records.values())))
        if self._now is None:
            return
        horizon = self._now - min(self._ttl, self._now - EPOCH)
        while self._records:
            oldest = next(iter(self._records.values()))
            if oldest.touched is None or oldest.touched >= horizon:
                break
            self._drop(oldest)

    def _drop(self, record: Record) -> None:
        if self._records.pop(record.key, None) is not None:
            self._bytes -= record.size
        where = (record.cluster, record.namespace)
        for index, value in (
            (self._by_vm, record.vm),
            (self._by_name, record.name),
            (self._by_uid, record.uid),
        ):
            if value is not None and index.get((*where, value)) is record:
                del index[(*where, value)]


def _tracked(event: MigrationEvent, record: Record, stamp: datetime | None, concluded: bool) -> Tracked:
    # The migration as it concluded (after a restart, as it is now): a retry's summary is the same.
    ended = (record.concluded_as or snapshot(record)) if concluded else None
    return Tracked(fill(event, record, stamp), ended, concluded)
