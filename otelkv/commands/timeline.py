"""``otelkv migrations --timeline``: the migrations on a time axis, in the terminal.

One line a migration, grouped under its source node (a drain reads as one block), a bar from its
start to its end (to now while it runs) — ``█`` succeeded, ``✗`` at the end of a failed one,
``▒`` and ``▶`` for one still running — its duration at the right, all fitted to ``width``
columns. :func:`render_timeline` is what ``make demo`` ends with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from otelkv.commands.migrations_table import duration_text, outcome_of
from otelkv.commands.terminal_text import terminal_text as t
from otelkv.kubevirt import Migration

__all__ = ["Span", "render_timeline", "span_of"]

_LABEL_MAX: Final = 40
_MIN_BAR: Final = 10


@dataclass(frozen=True, slots=True)
class Span:
    """Where one migration lies on the axis: from ``start`` to ``end`` (``now`` while it runs)."""

    migration: Migration
    start: datetime
    end: datetime


def span_of(m: Migration, now: datetime) -> Span | None:
    """The span of ``m``; None when it has no time at all."""
    start = m.started or m.ended
    if start is None:
        return None
    end = m.ended if outcome_of(m) != "running" else now
    return Span(m, start, max(start, end or start))


def group_by_source(spans: Sequence[Span]) -> dict[str, list[Span]]:
    """Spans under their source node (``?`` when unknown), nodes and spans in time order."""
    groups: dict[str, list[Span]] = {}
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        groups.setdefault(span.migration.source_node or "?", []).append(span)
    return dict(sorted(groups.items(), key=lambda item: (item[1][0].start, item[0])))


def _label(m: Migration) -> str:
    text = t(f"{m.namespace or '?'}/{m.vm_name or '?'}")  # escaped before it is cut
    return text if len(text) <= _LABEL_MAX else text[: _LABEL_MAX - 1] + "…"


def _suffix(span: Span) -> str:
    m, outcome = span.migration, outcome_of(span.migration)
    took = duration_text((span.end - span.start).total_seconds())
    if outcome == "running":
        return f"{took} so far → {t(m.target_node or '?')}"
    return f"{took} → {t(m.target_node or '?')}" + (" failed" if outcome == "Failed" else "")


def render_timeline(
    migrations: Sequence[Migration], *, width: int = 120, now: datetime | None = None, zone: tzinfo = UTC
) -> str:
    """The timeline of ``migrations`` in at most ``width`` columns (the bars get at least 10; what
    does not fit then is cut with ``…``)."""
    now = now or datetime.now(UTC)
    spans = [s for s in (span_of(m, now) for m in migrations) if s is not None]
    if not spans:
        return "no migrations with a start or end time to draw\n"
    first, last = min(s.start for s in spans), max(s.end for s in spans)
    total = max((last - first).total_seconds(), 1.0)
    label = max(len(_label(s.migration)) for s in spans) + 2  # two spaces of indent under the node
    suffix = max(len(_suffix(s)) for s in spans)
    bar = max(_MIN_BAR, width - label - suffix - 4)

    def column(when: datetime) -> int:
        return min(bar - 1, int((when - first).total_seconds() / total * bar))

    zone_name = "UTC" if zone is UTC else (first.astimezone(zone).tzname() or "local")
    per = timedelta(seconds=total / bar)
    lines = [
        f"{first.astimezone(zone):%Y-%m-%d %H:%M:%S} → {last.astimezone(zone):%Y-%m-%d %H:%M:%S} {zone_name}"
        f" (one column: {duration_text(per.total_seconds()) if per >= timedelta(seconds=1) else '<1s'}),"
        f" by source node"
    ]
    for node, group in group_by_source(spans).items():
        lines.append(t(node))
        for span in group:
            start, end = column(span.start), column(span.end)
            outcome = outcome_of(span.migration)
            cells = [" "] * bar
            fill = "▒" if outcome == "running" else "█"
            for i in range(start, end + 1):
                cells[i] = fill
            if outcome == "Failed":
                cells[end] = "✗"
            elif outcome == "running":
                cells[end] = "▶"
            name = "  " + _label(span.migration)
            lines.append(f"{name:<{label}} │{''.join(cells)}│ {_suffix(span)}".rstrip())
    lines.append(" " * label + " " + _axis(first, last, bar, zone))
    return "".join((line if len(line) <= width else line[: width - 1] + "…") + "\n" for line in lines)


def _axis(first: datetime, last: datetime, bar: int, zone: tzinfo) -> str:
    """Tick times under the bars: one every ~16 columns, as room allows."""
    total = max((last - first).total_seconds(), 1.0)
    fmt = "%H:%M:%S" if total < 3600 else ("%H:%M" if total < 86400 else "%m-%d %H:%M")
    cells = [" "] * (bar + 2)
    position = 0
    while position < bar:
        text = (first + timedelta(seconds=total * position / bar)).astimezone(zone).strftime(fmt)
        if position + len(text) + 1 > bar + 2:
            break
        cells[position] = "╵"
        for i, char in enumerate(text, position + 1):
            cells[i] = char
        position += max(16, len(text) + 4)
    return "".join(cells).rstrip()
