"""``otelkv migrations``: a table of the migrations in recorded events."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tabulate import tabulate

from otelkv.kubevirt import Migration, MigrationTracker, parse_k8s_event


def track(events: Iterable[dict[str, Any]], tracker: MigrationTracker | None = None) -> tuple[Migration, ...]:
    """Feed events (in time order) to a tracker; the migrations it found, oldest first."""
    tracker = tracker or MigrationTracker(max_entries=1_000_000)
    for event in events:
        try:
            tracker.observe(parse_k8s_event(event))
        except (TypeError, ValueError):
            continue  # not an Event we can read; the table is about the ones we can
    return tracker.migrations()


HEADERS = ("VM", "MIGRATION", "SOURCE → TARGET", "OUTCOME", "START", "DURATION", "FAILURE REASON")


def rows(migrations: Iterable[Migration]) -> list[tuple[str, ...]]:
    """One row a migration, for the table."""
    out: list[tuple[str, ...]] = []
    for m in migrations:
        duration = m.duration_seconds
        out.append((
            f"{m.namespace or '?'}/{m.vm_name or '?'}",
            m.migration_name or "-",
            f"{m.source_node or '?'} → {m.target_node or '?'}",
            m.phase or "?",
            m.started.strftime("%Y-%m-%d %H:%M:%S") if m.started else "-",
            f"{duration:.0f}s" if duration is not None else "-",
            m.failure_reason or "",
        ))  # fmt: skip
    return out


def render_table(migrations: Iterable[Migration]) -> str:
    """A plain-text table of ``migrations``, ending in a newline."""
    return tabulate(rows(migrations), headers=HEADERS, tablefmt="simple") + "\n"


def as_dict(m: Migration) -> dict[str, Any]:
    """One migration as plain data (times in RFC 3339, UTC)."""
    return {
        "namespace": m.namespace, "vm": m.vm_name, "migration": m.migration_name, "uid": m.migration_uid,
        "source_node": m.source_node, "target_node": m.target_node, "phase": m.phase,
        "started": m.started.isoformat() if m.started else None,
        "ended": m.ended.isoformat() if m.ended else None,
        "duration_seconds": m.duration_seconds, "failure_reason": m.failure_reason,
    }  # fmt: skip


def render_json(migrations: Iterable[Migration]) -> str:
    """``migrations`` as one JSON array."""
    return json.dumps([as_dict(m) for m in migrations], indent=2) + "\n"


def render_jsonl(migrations: Iterable[Migration]) -> str:
    """``migrations`` as JSON Lines: one object a line."""
    return "".join(json.dumps(as_dict(m)) + "\n" for m in migrations)
