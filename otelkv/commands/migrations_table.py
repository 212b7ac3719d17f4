"""``otelkv migrations``: the migrations in recorded events, as an SRE reads them.

A table (times labelled with their zone, UTC unless ``--local``; an END column; the time a
running migration has taken so far; the failure reason cut to the terminal width unless
``wide``), a summary line (how many succeeded, failed, are running; p50/p95 duration), filters,
and colour only when asked for by the caller (a TTY without ``NO_COLOR``). JSON (an array) and
JSON Lines for scripts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from tabulate import tabulate

from otelkv.commands.migrations_flags import UNKNOWN
from otelkv.commands.terminal_text import terminal_text as t
from otelkv.kubevirt import TERMINAL_PHASES, Migration, MigrationTracker, parse_k8s_event
from otelkv.kubevirt.tracker import RECORD_OVERHEAD

_COLOURS: Final = {"Succeeded": "\x1b[32m", "Failed": "\x1b[31m", "running": "\x1b[33m"}
_RESET: Final = "\x1b[0m"
_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")


#: A report never loses rows by age: the tracker's time-to-live (meant for ``serve``, which must
#: forget) would drop every migration 6 hours older than the newest event of the input.
REPORT_TTL: Final = timedelta.max
#: Nor by memory, short of a million migrations (each ~1 KiB: RECORD_OVERHEAD).
REPORT_MAX_MIGRATIONS: Final = 1_000_000


def report_tracker() -> MigrationTracker:
    """A tracker for a report: bounded only by :data:`REPORT_MAX_MIGRATIONS`, never by age."""
    return MigrationTracker(
        max_entries=REPORT_MAX_MIGRATIONS, max_bytes=REPORT_MAX_MIGRATIONS * RECORD_OVERHEAD * 4, ttl=REPORT_TTL
    )


def track(events: Iterable[Mapping[str, Any]], tracker: MigrationTracker | None = None) -> tuple[Migration, ...]:
    """Feed events (in time order) to a tracker (by default :func:`report_tracker`); the
    migrations it found, oldest first."""
    tracker = report_tracker() if tracker is None else tracker  # an empty tracker is falsy (len 0)
    for event in events:
        try:
            tracker.observe(parse_k8s_event(event))
        except (TypeError, ValueError):
            continue  # not an Event we can read; the table is about the ones we can
    return tracker.migrations()


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """Which migrations to show; None: any. ``phase`` matches case-insensitively, ``running``
    meaning any phase that is not terminal; ``since`` keeps those started (or ended) at or after
    it, ``until`` those started (or ended) before it; ``trigger`` is one of
    :data:`~otelkv.kubevirt.trigger.TRIGGERS` (``unknown``: none said); ``cluster`` the
    collector's ``k8s.cluster.name``."""

    namespace: str | None = None
    vm: str | None = None
    phase: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    trigger: str | None = None
    cluster: str | None = None

    def keep(self, m: Migration) -> bool:
        """Whether ``m`` passes every filter."""
        if self.namespace is not None and m.namespace != self.namespace:
            return False
        if self.vm is not None:
            namespace, slash, name = self.vm.rpartition("/")
            if m.vm_name != name or (slash and m.namespace != namespace):
                return False
        if self.phase is not None and self.phase.lower() != outcome_of(m).lower():
            return False
        if self.trigger is not None and self.trigger != (m.trigger or UNKNOWN):
            return False
        if self.cluster is not None and self.cluster != m.cluster:
            return False
        when = m.started or m.ended
        if self.since is not None and (when is None or when < self.since):
            return False
        return self.until is None or (when is not None and when < self.until)


def outcome_of(m: Migration) -> str:
    return m.phase if m.phase in TERMINAL_PHASES else "running"


@dataclass(frozen=True, slots=True, kw_only=True)
class TableStyle:
    """How the table looks: the clock for running migrations, the zone of times, the width to fit
    the failure reason in (None: no limit), colour."""

    now: datetime
    zone: tzinfo = UTC
    width: int | None = None
    colour: bool = False


def duration_text(seconds: float) -> str:
    """``45s``, ``2m37s``, ``1h02m``: how long, at a glance."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _zone_label(style: TableStyle) -> str:
    return "UTC" if style.zone is UTC else (style.now.astimezone(style.zone).tzname() or "local")


def _time(when: datetime | None, style: TableStyle) -> str:
    return when.astimezone(style.zone).strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def clusters(migrations: Iterable[Migration]) -> list[str]:
    """The clusters the migrations ran in, sorted (a migration in none counts as ``?``)."""
    return sorted({m.cluster or "?" for m in migrations})


def rows(migrations: Iterable[Migration], style: TableStyle, *, cluster: bool = False) -> list[list[str]]:
    """One row a migration (its cluster first when ``cluster``), the failure reason last and uncut;
    the data's control characters shown escaped (:mod:`.terminal_text`), before any colour."""
    out: list[list[str]] = []
    for m in migrations:
        outcome = outcome_of(m)
        if m.duration_seconds is not None:
            duration = duration_text(m.duration_seconds)
        elif outcome == "running" and m.started is not None:
            duration = f"{duration_text(max(0.0, (style.now - m.started).total_seconds()))} so far"
        else:
            duration = "-"
        shown = t(m.phase or "?")
        if style.colour:
            shown = f"{_COLOURS[outcome]}{shown}{_RESET}"
        out.append(
            ([t(m.cluster or "?")] if cluster else [])
            + [
                t(f"{m.namespace or '?'}/{m.vm_name or '?'}"),
                t(m.migration_name or "-"),
                t(f"{m.source_node or '?'} → {m.target_node or '?'}"),
                shown,
                _time(m.started, style),
                _time(m.ended if outcome != "running" else None, style),
                duration,
                t(m.trigger or UNKNOWN),
                t(m.failure_reason or ""),
            ]
        )
    return out


def render_table(migrations: Sequence[Migration], style: TableStyle) -> str:
    """The table and the summary line, ending in a newline; a CLUSTER column first when the
    migrations come from more than one cluster."""
    zone = _zone_label(style)
    several = len(clusters(migrations)) > 1
    headers = [
        *(["CLUSTER"] if several else []),
        "VM",
        "MIGRATION",
        "SOURCE → TARGET",
        "OUTCOME",
        f"START ({zone})",
        f"END ({zone})",
        "DURATION",
        "TRIGGER",
        "FAILURE REASON",
    ]
    body = rows(migrations, style, cluster=several)
    if style.width is not None and body:
        without = tabulate([r[:-1] for r in body], headers=headers[:-1], tablefmt="simple")
        widest = max(len(_ANSI.sub("", line)) for line in without.splitlines())  # colour codes take no room
        room = max(len("FAILURE REASON"), style.width - widest - 2)
        for row in body:
            if len(row[-1]) > room:
                row[-1] = row[-1][: room - 1] + "…"
    return tabulate(body, headers=headers, tablefmt="simple") + "\n" + summary(migrations) + "\n"


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summary(migrations: Sequence[Migration]) -> str:
    """``4 migrations: 2 succeeded, 2 failed, 0 running; duration p50 42s, p95 2m37s``."""
    outcomes = [outcome_of(m) for m in migrations]
    counts = ", ".join(f"{outcomes.count(o)} {o.lower()}" for o in ("Succeeded", "Failed", "running"))
    line = f"{len(migrations)} migration{'s' if len(migrations) != 1 else ''}: {counts}"
    durations = [m.duration_seconds for m in migrations if m.duration_seconds is not None]
    if durations:
        line += (
            f"; duration p50 {duration_text(percentile(durations, 0.5))}, "
            f"p95 {duration_text(percentile(durations, 0.95))} (of {len(durations)} finished)"
        )
    return line


def as_dict(m: Migration) -> dict[str, Any]:
    """One migration as plain data (times in RFC 3339, UTC)."""
    return {
        "namespace": m.namespace,
        "vm": m.vm_name,
        "migration": m.migration_name,
        "uid": m.migration_uid,
        "source_node": m.source_node,
        "target_node": m.target_node,
        "phase": m.phase,
        "started": m.started.isoformat() if m.started else None,
        "ended": m.ended.isoformat() if m.ended else None,
        "duration_seconds": m.duration_seconds,
        "failure_reason": m.failure_reason,
        "trigger": m.trigger,
        "trigger_source": m.trigger_source,
        "cluster": m.cluster,
    }


def render_json(migrations: Iterable[Migration]) -> str:
    """``migrations`` as one JSON array."""
    return json.dumps([as_dict(m) for m in migrations], indent=2) + "\n"


def render_yaml(migrations: Iterable[Migration]) -> str:
    """``migrations`` as one YAML list (the objects of :func:`render_json`)."""
    import yaml  # noqa: PLC0415 - yaml is loaded with the event files anyway

    return str(yaml.safe_dump([as_dict(m) for m in migrations], sort_keys=False))


def render_jsonl(migrations: Iterable[Migration]) -> str:
    """``migrations`` as JSON Lines: one object a line."""
    return "".join(json.dumps(as_dict(m)) + "\n" for m in migrations)
