"""``otelkv migrations --loki``: the migrations otelkv wrote to Loki, as the same
:class:`~otelkv.kubevirt.Migration` snapshots the table prints from events.

- The KubeVirt event records of the last :data:`RUNNING_LOOKBACK` before the end of the range are
  read back into the shape the collector sent them in and fed to the same tracker ``otelkv
  migrations`` feeds a file to, one tracker per cluster (label ``k8s_cluster_name``: namespaces of
  two clusters never mix). Every migration found there — running ones, which have no summary
  yet, and finished ones — is exactly the row the events themselves give.
- Older migrations are their summary record (``event.name=kubevirt.migration.summary``): its
  attributes are the facts as otelkv's tracker knew them when the migration ended. The end and
  duration are those of a table of all the events (one rule: KubeVirt's own times, else the
  earliest terminal event); a fact a later event added (a failure reason the controller's word
  brought after the handler's) is the one thing a summary may lack.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from otelkv.commands.loki_query import LokiEntry, LokiError, LokiQuery, Progress
from otelkv.commands.migrations_table import outcome_of, track
from otelkv.kubevirt import Migration
from otelkv.kubevirt.k8s import COLLECTOR_KEYS
from otelkv.kubevirt.trigger import FROM_NAME, trigger_of_name

__all__ = [
    "EVENTS_QUERY",
    "RUNNING_LOOKBACK",
    "SUMMARY_QUERY",
    "WARNINGS_QUERY",
    "History",
    "read_history",
    "tracked_migrations",
]

SERVICE: Final = '{service_name="kubevirt-events"}'
#: The summary records (LogQL: structured metadata is filtered after the selector).
SUMMARY_QUERY: Final = SERVICE + ' | event_name="kubevirt.migration.summary"'
#: The KubeVirt event records otelkv forwarded (the collector's filter keeps these two kinds).
EVENTS_QUERY: Final = SERVICE + ' | k8s_object_kind=~"VirtualMachineInstance(Migration)?"'
#: KubeVirt's Warning on a VMI a drain cannot move (drains.NOT_MIGRATABLE), read over the whole
#: range for the drain view: a line filter, the message being the line.
WARNINGS_QUERY: Final = SERVICE + ' |= "vmi is not migratable" | k8s_object_kind="VirtualMachineInstance"'
#: How far back from the end of the range events are read (for migrations still running, and to
#: give recent ones exactly the rows their events give): far longer than KubeVirt lets a
#: migration run (its completion timeout is 150 s per GiB of memory).
RUNNING_LOOKBACK: Final = timedelta(hours=24)
#: Loki's name of the cluster label (resource attribute ``k8s.cluster.name``).
CLUSTER: Final = "k8s_cluster_name"
NAMESPACE: Final = "k8s_namespace_name"


def loki_name(name: str) -> str:
    """An OTLP attribute name as Loki stores it (FACTS §3: non-alphanumerics become ``_``)."""
    out = "".join(c if c.isascii() and c.isalnum() else "_" for c in name)
    return f"key_{out}" if out[:1].isdigit() else out


_SUMMARY: Final = "kubevirt_migration_"


@dataclass(frozen=True, slots=True)
class History:
    """What Loki held: the migrations, and the KubeVirt event records read (for the drain view);
    ``nameless``: the summary records skipped for naming no VM (no row can say which it was)."""

    migrations: tuple[Migration, ...]
    events: tuple[dict[str, Any], ...]
    entries: int
    nameless: int = 0


def read_history(
    loki: LokiQuery,
    start: datetime,
    end: datetime,
    *,
    tenant: str | None,
    progress: Progress | None = None,
    warnings: bool = False,
) -> History:
    """The migrations otelkv wrote to ``loki`` between ``start`` and ``end``; LokiError when the
    tenant holds no otelkv records there at all. ``warnings``: also the not-migratable warnings
    before the events' look-back (for the drain view), so that :attr:`History.events` holds
    every one in the range."""
    start_ns, end_ns = _ns(start), _ns(end)
    summaries = list(loki.entries(SUMMARY_QUERY, start_ns, end_ns, what="summaries", progress=progress))
    events_from = max(start_ns, _ns(end - RUNNING_LOOKBACK))
    older = []
    if warnings and start_ns < events_from:
        older = [
            as_collector_event(e)
            for e in loki.entries(WARNINGS_QUERY, start_ns, events_from, what="warnings", progress=progress)
        ]
    entries = list(loki.entries(EVENTS_QUERY, events_from, end_ns, what="events", progress=progress))
    if progress is not None:
        progress.done()
    if not summaries and not entries:
        who = f"tenant {tenant!r}" if tenant else "no tenant (--tenant)"
        raise LokiError(
            f"Loki at {loki.shown} holds no otelkv records ({SERVICE}) for {who} from {start:%Y-%m-%d %H:%M} to "
            f"{end:%Y-%m-%d %H:%M} UTC: check --tenant, and --since or --from/--to"
        )
    events = [as_collector_event(e) for e in entries]
    tracked = tracked_migrations(events)
    summarized = [from_summary(e) for e in summaries if e.labels.get("kubevirt_vm_name")]
    nameless = len(summaries) - len(summarized)
    finished = [next((t for t in tracked if same(s, t) and better(t, s)), s) for s in summarized]
    rest = [t for t in tracked if not any(same(s, t) for s in summarized)]
    ordered = sorted([*finished, *rest], key=lambda m: (m.started or m.ended or end, m.migration_name or ""))
    return History(tuple(ordered), (*older, *events), len(summaries) + len(older) + len(entries), nameless)


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def from_summary(entry: LokiEntry) -> Migration:
    """The migration a summary record states (``summary.py`` wrote these attributes)."""
    a = entry.labels

    def fact(name: str) -> str | None:
        return a.get(_SUMMARY + name) or None

    name = fact("name")
    trigger, source = fact("trigger"), fact("trigger_source")
    if trigger is None:  # written before otelkv stated it: the name's prefix says it, as the tracker would
        trigger, source = trigger_of_name(name), FROM_NAME if name else None
    return Migration(
        namespace=a.get(NAMESPACE) or None,
        vm_name=a.get("kubevirt_vm_name") or None,
        migration_name=name,
        migration_uid=fact("uid"),
        phase=fact("phase"),
        source_node=fact("source_node"),
        target_node=fact("target_node"),
        target_pod=fact("target_pod"),
        failure_reason=fact("failure_reason"),
        started=_time(fact("start_time")),
        ended=_time(fact("end_time")),
        events=0,
        mode=fact("mode"),
        abort_status=fact("abort_status"),
        trigger=trigger,
        trigger_source=source,
        cluster=a.get(CLUSTER) or None,
    )


#: Loki's names of the attributes the collector's k8s_events shape has.
_COLLECTOR_NAMES: Final = {loki_name(k): k for k in (*COLLECTOR_KEYS, "k8s.event.start_time")}


def as_collector_event(entry: LokiEntry) -> dict[str, Any]:
    """A KubeVirt event record read back into the mapping :func:`otelkv.kubevirt.parse_k8s_event`
    reads for the collector's shape (its body, severity text and time as the record had them)."""
    a = entry.labels
    event: dict[str, Any] = {k: a[n] for n, k in _COLLECTOR_NAMES.items() if a.get(n)}
    count = event.get("k8s.event.count")
    if isinstance(count, str):
        event["k8s.event.count"] = int(count) if count.isdigit() else None
    event.update(body=entry.line, timestamp=entry.time_ns, severity_text=a.get("severity_text") or None)
    if a.get(CLUSTER):
        event["k8s.cluster.name"] = a[CLUSTER]
    return event


def tracked_migrations(events: Iterable[Mapping[str, Any]]) -> list[Migration]:
    """The migrations the tracker finds in ``events`` (time order), cluster by cluster."""
    by_cluster: dict[str | None, list[Mapping[str, Any]]] = {}
    for event in events:
        by_cluster.setdefault(event.get("k8s.cluster.name"), []).append(event)
    found = []
    for cluster, theirs in by_cluster.items():
        for m in track(theirs):
            found.append(m if m.cluster or cluster is None else dataclasses.replace(m, cluster=cluster))
    return found


def same(summary: Migration, m: Migration) -> bool:
    """Whether ``summary`` and ``m`` (from events) are one migration. A migration without a name
    or uid matches by VM when the summary ended after it started (its end came from a record not
    forwarded, such as a migration object)."""
    if (summary.cluster, summary.namespace) != (m.cluster, m.namespace):
        return False
    if summary.migration_uid and m.migration_uid:
        return summary.migration_uid == m.migration_uid
    if summary.migration_name and m.migration_name:
        return summary.migration_name == m.migration_name
    after = summary.ended is not None and (m.started is None or summary.ended >= m.started)
    return summary.vm_name == m.vm_name and after


def better(tracked: Migration, summary: Migration) -> bool:
    """Whether the migration rebuilt from events says at least what its summary says: it ended
    (the summary proves it did), and its start was in the events read."""
    return outcome_of(tracked) != "running" and (tracked.started is not None or summary.started is None)


def default_range(since: datetime | None, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The range a query covers: Loki's own default (the last hour) where a bound is not given."""
    end = min(until or now, now)
    return (since or end - timedelta(hours=1)), end
