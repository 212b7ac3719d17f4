"""``otelkv migrations --by-node``: evacuation migrations grouped by the node being drained, with
the VMs moved, failed, still moving, and what blocks the drain (a not-migratable warning on a VMI
of that node, an evacuation that failed or still runs)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from otelkv.commands.drains import drains, not_migratable, render_drains
from otelkv.commands.event_file import read_event_file
from otelkv.commands.migrations_table import TableStyle, track
from otelkv.kubevirt import Migration
from tests.conftest import EXAMPLE
from tests.test_migrations_report import migrations

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_the_example_has_two_drains_both_blocked() -> None:
    events = read_event_file(str(EXAMPLE))
    found = drains(track(events), events)
    by_node = {d.node: d for d in found}
    assert set(by_node) == {"node01", "worker-a.lab.example.com"}
    assert by_node["worker-a.lab.example.com"].failed == ["virtualmachines/rhel9-db.prod"]
    assert by_node["worker-a.lab.example.com"].blocking == ["virtualmachines/rhel9-db.prod (failed)"]
    [blocked] = by_node["node01"].blocking
    assert blocked.startswith("tenant-a/web-02 (not migratable: cannot migrate VMI: PVC scratch is not shared")
    assert all(d.ended is None for d in found)  # not over while something blocks it
    assert [b.node for b in not_migratable(events)] == ["node01", "worker-a.lab.example.com"]  # rhel9: failed first


def test_a_drain_counts_its_vms_and_a_retry_that_moved_one_unblocks_it() -> None:
    [template] = [m for m in track(read_event_file(str(EXAMPLE))) if m.trigger == "evacuation"]

    def evacuation(vm: str, minute: int, phase: str, ended: bool = True) -> Migration:
        return replace(
            template, vm_name=vm, namespace="prod", source_node="node07", target_node="node08", phase=phase,
            migration_name=f"kubevirt-evacuation-{vm}{minute}", migration_uid=f"{vm}{minute}",
            started=T0 + timedelta(minutes=minute), ended=T0 + timedelta(minutes=minute + 1) if ended else None,
        )  # fmt: skip

    moved = [
        evacuation("a", 0, "Succeeded"),
        evacuation("b", 1, "Failed"),
        evacuation("b", 5, "Succeeded"),  # the retry moved it
        evacuation("c", 2, "Running", ended=False),
        replace(evacuation("d", 3, "Succeeded"), trigger="user"),  # not part of the drain
    ]
    [drain] = drains(moved)
    assert (drain.node, drain.moved, drain.failed, drain.running) == ("node07", ["prod/a", "prod/b"], [], ["prod/c"])
    assert drain.blocking == ["prod/c (still migrating)"] and drain.started == T0 and drain.ended is None
    [done] = drains(moved[:3])
    assert done.blocking == [] and done.ended == T0 + timedelta(minutes=6)
    table = render_drains([done], TableStyle(now=T0))
    assert table.splitlines()[2].split()[:8] == [
        "node07",
        "2026-11-20",
        "09:00:00",
        "2026-11-20",
        "09:06:00",
        "2",
        "0",
        "0",
    ]
    assert table.splitlines()[-1] == "1 drain: 0 blocked"


def test_the_command_prints_the_drains() -> None:
    done = migrations(str(EXAMPLE), "--by-node")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split()[:2] == ["NODE", "DRAINED"]
    assert "BLOCKING THE DRAIN" in done.stdout and done.stdout.splitlines()[-1] == "2 drains: 2 blocked"
    both = migrations(str(EXAMPLE), "--by-node", "--timeline")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_no_drains_says_so() -> None:
    assert render_drains([], TableStyle(now=T0)).startswith("no evacuation migrations (node drains)")


def test_the_blockers_are_cut_to_the_terminal_unless_wide() -> None:
    cut = migrations(str(EXAMPLE), "--by-node", env={"COLUMNS": "120"})
    assert max(len(line) for line in cut.stdout.splitlines()) <= 120 and "…" in cut.stdout
    wide = migrations(str(EXAMPLE), "--by-node", "--wide", env={"COLUMNS": "120"})
    assert "(using ReadWriteMany access mode))" in wide.stdout


def test_nodes_of_two_clusters_are_two_drains() -> None:
    events = read_event_file(str(EXAMPLE))
    found = track(events)
    both = [replace(m, cluster=c) for c in ("east", "west") for m in found]
    nodes = [d.node for d in drains(both)]
    assert nodes == ["east/worker-a.lab.example.com", "west/worker-a.lab.example.com"]


def test_a_drawn_view_with_a_data_output_is_refused() -> None:
    done = migrations(str(EXAMPLE), "--by-node", "-o", "json")
    assert (
        done.returncode == 2 and done.stderr == "otelkv: --by-node is drawn in the terminal: give it without -o json\n"
    )
