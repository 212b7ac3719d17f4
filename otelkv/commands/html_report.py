"""``otelkv migrations -o html``: one self-contained page — the timeline as SVG and the table,
sortable by any column — that a browser reads offline: no network, no CDN, no external file;
its style and its script are inside it."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from otelkv.commands.migrations_flags import UNKNOWN
from otelkv.commands.migrations_table import duration_text, outcome_of, summary
from otelkv.commands.timeline import group_by_source, span_of
from otelkv.kubevirt import Migration

__all__ = ["render_html"]

_ROW: Final = 22
_LABEL: Final = 260
_PLOT: Final = 900

_STYLE: Final = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } p.summary { color: #444; }
svg { border: 1px solid #ddd; background: #fcfcfc; }
svg text { font: 12px monospace; }
.bar.Succeeded { fill: #3a9a4a; } .bar.Failed { fill: #c0392b; } .bar.running { fill: #e0a800; }
.node { font-weight: bold; } .fail { fill: #c0392b; font-weight: bold; }
table { border-collapse: collapse; margin-top: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td { white-space: nowrap; } td:last-child { white-space: normal; min-width: 24em; }
th { cursor: pointer; background: #f3f3f3; user-select: none; }
th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
td.Failed { color: #c0392b; } td.Succeeded { color: #2d7a3a; } td.running { color: #a07800; }
"""

# Sorts the table by the clicked column (its cells' data-sort, else their text); again: reversed.
_SCRIPT: Final = """
document.querySelectorAll("table.migrations th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.dataset.type === "number";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.sort || a.cells[column].textContent;
      var y = b.cells[column].dataset.sort || b.cells[column].textContent;
      var order = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

_COLUMNS: Final = (
    ("Cluster", "text"),
    ("VM", "text"),
    ("Migration", "text"),
    ("Source", "text"),
    ("Target", "text"),
    ("Outcome", "text"),
    ("Start (UTC)", "text"),
    ("End (UTC)", "text"),
    ("Duration", "number"),
    ("Trigger", "text"),
    ("Failure reason", "text"),
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _time(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def _svg(migrations: Sequence[Migration], now: datetime) -> str:
    spans = [s for s in (span_of(m, now) for m in migrations) if s is not None]
    if not spans:
        return "<p>No migration has a start or end time to draw.</p>"
    first, last = min(s.start for s in spans), max(s.end for s in spans)
    total = max((last - first).total_seconds(), 1.0)
    parts, y = [], 0

    def x(when: datetime) -> float:
        return _LABEL + (when - first).total_seconds() / total * _PLOT

    for node, group in group_by_source(spans).items():
        y += _ROW
        parts.append(f'<text class="node" x="4" y="{y - 6}">{_e(node)}</text>')
        for span in group:
            y += _ROW
            m, outcome = span.migration, outcome_of(span.migration)
            left, right = x(span.start), x(span.end)
            title = (
                f"{m.namespace}/{m.vm_name}: {m.source_node or '?'} → {m.target_node or '?'}, {m.phase or '?'}, "
                f"{_time(span.start)} to {_time(span.end)} UTC"
            )
            name = f"{m.namespace or '?'}/{m.vm_name or '?'}"
            parts.append(f'<text x="16" y="{y - 6}">{_e(name)}</text>')
            parts.append(
                f'<rect class="bar {outcome}" data-vm="{_e(m.vm_name or "")}" x="{left:.1f}" y="{y - 17}" '
                f'width="{max(right - left, 2):.1f}" height="14"><title>{_e(title)}</title></rect>'
            )
            if outcome == "Failed":
                parts.append(f'<text class="fail" x="{right + 3:.1f}" y="{y - 6}">✗</text>')
    y += _ROW
    for i in range(5):
        tick = first.timestamp() + total * i / 4
        parts.append(
            f'<text x="{_LABEL + _PLOT * i / 4:.1f}" y="{y}" text-anchor="{"end" if i == 4 else "start"}">'
            f"{datetime.fromtimestamp(tick, UTC):%m-%d %H:%M:%S}</text>"
        )
    width, height = _LABEL + _PLOT + 30, y + 8
    return (
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="migration timeline">{"".join(parts)}</svg>'
    )


def _row(m: Migration) -> str:
    outcome = outcome_of(m)
    seconds = m.duration_seconds
    cells = [
        ("", m.cluster or "-"),
        ("", f"{m.namespace or '?'}/{m.vm_name or '?'}"),
        ("", m.migration_name or "-"),
        ("", m.source_node or "?"),
        ("", m.target_node or "?"),
        (f' class="{outcome}"', m.phase or "?"),
        ("", _time(m.started)),
        ("", _time(m.ended if outcome != "running" else None)),
        (f' data-sort="{seconds if seconds is not None else -1}"', duration_text(seconds) if seconds else "-"),
        ("", m.trigger or UNKNOWN),
        ("", m.failure_reason or ""),
    ]
    return "<tr>" + "".join(f"<td{attrs}>{_e(text)}</td>" for attrs, text in cells) + "</tr>"


def render_html(migrations: Sequence[Migration], *, now: datetime | None = None, title: str = "") -> str:
    """The page, as one string."""
    now = now or datetime.now(UTC)
    heading = title or "KubeVirt live migrations"
    head = "".join(f'<th data-type="{kind}">{_e(name)}</th>' for name, kind in _COLUMNS)
    body = "\n".join(_row(m) for m in migrations)
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(heading)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n<h1>{_e(heading)}</h1>\n"
        f'<p class="summary">{_e(summary(migrations))} — made by otelkv at {_time(now)} UTC</p>\n'
        f"{_svg(migrations, now)}\n"
        f'<table class="migrations"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>\n'
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )
