"""``otelkv migrations --by-node``: each node drain at a glance.

A drain is the evacuation migrations (trigger ``evacuation``) off one node — KubeVirt migrates
every LiveMigrate VM off a node being drained, and the drained node is their source — with what
holds it up: VMIs on that node that KubeVirt said cannot move (the Warning ``EvictionStrategy is
set but vmi is not migratable``, recorded on the VMI by the virt-handler of its node), and
evacuation migrations that failed or still run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from tabulate import tabulate

from otelkv.commands.migrations_table import TableStyle, outcome_of
from otelkv.commands.terminal_text import terminal_text as t
from otelkv.kubevirt import Migration, parse_k8s_event
from otelkv.kubevirt.trigger import EVACUATION

__all__ = ["Drain", "drains", "not_migratable", "render_drains"]

#: KubeVirt's warning on a VMI that a drain cannot move (docs/parsing.md; detail since v0.54).
NOT_MIGRATABLE: Final = "EvictionStrategy is set but vmi is not migratable"
_NEVER: Final = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Blocked:
    """A VMI a drain found not migratable: on ``node`` (of ``cluster``), at ``when``, why (KubeVirt's detail)."""

    node: str
    vm: str
    when: datetime | None
    why: str | None
    cluster: str | None = None


@dataclass(slots=True)
class Drain:
    """One node being drained (``cluster/node`` when the cluster is known): its VMs moved, failed,
    still moving, and what blocks it."""

    node: str
    started: datetime | None = None
    ended: datetime | None = None
    moved: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)


def not_migratable(events: Iterable[dict[str, Any]]) -> list[Blocked]:
    """The not-migratable warnings in ``events`` (any shape :func:`parse_k8s_event` reads)."""
    found = []
    for raw in events:
        try:
            event = parse_k8s_event(raw)
        except (TypeError, ValueError):
            continue
        if not (event.template or event.message).startswith(NOT_MIGRATABLE) or not event.host:
            continue
        vm = f"{event.namespace or '?'}/{event.vm_name or event.object_name or '?'}"
        why = event.message.partition(";")[2].strip() or None
        cluster = raw.get("k8s.cluster.name")  # read back from Loki (loki_history.as_collector_event)
        found.append(Blocked(event.host, vm, event.timestamp, why, cluster if isinstance(cluster, str) else None))
    return found


def drains(migrations: Sequence[Migration], events: Iterable[dict[str, Any]] = ()) -> list[Drain]:
    """The drains in ``migrations`` (and the warnings in ``events``), by first activity."""
    by_node: dict[str, Drain] = {}
    latest: dict[tuple[str, str], Migration] = {}
    for m in sorted(migrations, key=lambda m: m.started or m.ended or _NEVER):
        if m.trigger != EVACUATION:
            continue
        node = _where(m.cluster, m.source_node or "?")
        drain = by_node.setdefault(node, Drain(node))
        drain.started = _min(drain.started, m.started or m.ended)
        drain.ended = _max(drain.ended, m.ended)
        latest[(node, f"{m.namespace or '?'}/{m.vm_name or '?'}")] = m  # a later attempt replaces an earlier
    for (node, vm), m in latest.items():
        outcome = outcome_of(m)
        drain = by_node[node]
        {"Succeeded": drain.moved, "Failed": drain.failed, "running": drain.running}[outcome].append(vm)
        if outcome != "Succeeded":
            drain.blocking.append(f"{vm} ({'failed' if outcome == 'Failed' else 'still migrating'})")
    for blocked in not_migratable(events):
        node = _where(blocked.cluster, blocked.node)
        drain = by_node.setdefault(node, Drain(node))
        drain.started = _min(drain.started, blocked.when)
        if blocked.vm in drain.moved:
            continue  # it moved after all (made migratable, then evacuated)
        text = f"{blocked.vm} (not migratable{': ' + blocked.why if blocked.why else ''})"
        if not any(b.startswith(f"{blocked.vm} (") for b in drain.blocking):
            drain.blocking.append(text)
    for drain in by_node.values():
        if drain.running or drain.blocking:
            drain.ended = None  # not over while something still moves or cannot
    return sorted(by_node.values(), key=lambda d: (d.started or _NEVER, d.node))


def _where(cluster: str | None, node: str) -> str:
    """A node's name, with its cluster's in front when known (two clusters may share node names)."""
    return f"{cluster}/{node}" if cluster else node


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def render_drains(found: Sequence[Drain], style: TableStyle) -> str:
    """A table of ``found``, one drain a row, and a summary line."""
    zone = "UTC" if style.zone is UTC else (style.now.astimezone(style.zone).tzname() or "local")

    def when(t: datetime | None) -> str:
        return t.astimezone(style.zone).strftime("%Y-%m-%d %H:%M:%S") if t else "-"

    rows = [
        [
            t(d.node),
            when(d.started),
            when(d.ended) if d.ended else "not over",
            len(d.moved),
            len(d.failed),
            len(d.running),
            t(", ".join(d.blocking)) or "-",
        ]
        for d in found
    ]
    headers = ["NODE DRAINED", f"START ({zone})", f"END ({zone})", "MOVED", "FAILED", "RUNNING", "BLOCKING THE DRAIN"]
    blocked = sum(1 for d in found if d.blocking)
    line = f"{len(found)} drain{'s' if len(found) != 1 else ''}: {blocked} blocked"
    if not found:
        return "no evacuation migrations (node drains) and no not-migratable warnings in the input\n" + line + "\n"
    if style.width is not None:  # the list of blockers is cut to the terminal, as the failure reason is
        without = tabulate([r[:-1] for r in rows], headers=headers[:-1], tablefmt="simple", disable_numparse=True)
        room = max(len(headers[-1]), style.width - max(map(len, without.splitlines())) - 2)
        for row in rows:
            text = str(row[-1])
            row[-1] = text if len(text) <= room else text[: room - 1] + "…"
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True) + "\n" + line + "\n"
