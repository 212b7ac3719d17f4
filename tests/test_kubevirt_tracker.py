"""MigrationTracker: joining events of one migration, never across migrations, in bounded memory."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from otelkv.kubevirt import MigrationEvent, MigrationTracker, parse_event, parse_k8s_event
from tests.data.make_fixtures import FIXTURES
from tests.scenarios import BASE, VMI, VMIM, Truth, migration_events

DATA = Path(__file__).parent / "data"


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


def vmi_event(reason: str, message: str, host: str | None, t: float, type_: str = "Normal", **kw: Any) -> Any:
    return parse_event(
        reason=reason,
        message=message,
        event_type=type_,
        object_kind=VMI,
        object_name=kw.pop("vm", "fedora-vm"),
        namespace=kw.pop("ns", "vms"),
        host=host,
        component="virt-handler",
        timestamp=at(t),
        **kw,
    )


def vmim_event(reason: str, message: str, t: float, name: str = "kubevirt-migrate-vm-aaaaa", **kw: Any) -> Any:
    return parse_event(
        reason=reason,
        message=message,
        event_type=kw.pop("type_", "Normal"),
        object_kind=VMIM,
        object_name=name,
        object_uid=kw.pop("uid", f"uid-{name}"),
        namespace=kw.pop("ns", "vms"),
        component="virtualmachine-controller",
        timestamp=at(t),
        **kw,
    )


def created(t: float, name: str = "kubevirt-migrate-vm-aaaaa", vm: str = "fedora-vm", **kw: Any) -> Any:
    return vmim_event("SuccessfulCreate", f"Created migration target pod virt-launcher-{vm}-9xbzq", t, name, **kw)


def prepared(host: str, t: float, **kw: Any) -> Any:
    return vmi_event("PreparingTarget", "VirtualMachineInstance Migration Target Prepared.", host, t, **kw)


def migrating(host: str, t: float, **kw: Any) -> Any:
    return vmi_event("Migrating", "VirtualMachineInstance is migrating.", host, t, **kw)


def migrated(host: str, target: str, t: float, **kw: Any) -> Any:
    return vmi_event("Migrated", f"The VirtualMachineInstance migrated to node {target}.", host, t, **kw)


def succeeded(t: float, name: str = "kubevirt-migrate-vm-aaaaa", **kw: Any) -> Any:
    return vmim_event("SuccessfulMigration", "Source node reported migration succeeded", t, name, **kw)


# -- realistic sequences -------------------------------------------------------------------------


def load(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((DATA / name).read_text())["items"]
    return items


def in_time_order(items: list[dict[str, Any]]) -> list[MigrationEvent]:
    """The API lists events by name, not by time: a reader sorts them first (stable)."""
    events = [parse_k8s_event(item) for item in items]
    return sorted(events, key=lambda e: e.timestamp or BASE)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_whole_migration_from_kubectl_json(name: str) -> None:
    truth, _, running = FIXTURES[name]
    tracker = MigrationTracker()
    events = in_time_order(load(name))
    out = [tracker.observe(e) for e in events]

    [migration] = tracker.migrations()
    assert (migration.namespace, migration.vm_name, migration.migration_name, migration.migration_uid) == (
        truth.namespace,
        truth.vm,
        truth.migration,
        truth.migration_uid,
    )
    assert (migration.source_node, migration.target_node, migration.target_pod) == (
        truth.source,
        truth.target,
        truth.target_pod,
    )
    assert migration.phase == ("Succeeded" if truth.succeeded else "Failed")
    assert migration.failure_reason == truth.failure_reason
    # One truth (issue 21): the earliest terminal event, the handler's own, ends it.
    assert migration.duration_seconds == running + 4

    steps = [e for e in out if e.is_migration]
    assert len(steps) == 7
    assert all(e.vm_name == truth.vm and e.migration_name == truth.migration for e in steps)
    assert all(e.migration_uid == truth.migration_uid for e in steps)
    # Nodes appear once revealed: target at PreparingTarget (3rd), source at Migrating (5th).
    assert [e.target_node for e in steps] == [None, None] + [truth.target] * 5
    assert [e.source_node for e in steps] == [None] * 4 + [truth.source] * 3
    terminal = [e for e in steps if e.phase in ("Succeeded", "Failed")]
    assert [e.duration_seconds for e in terminal] == [running + 4, running + 4]  # the same on both
    assert all(e.failure_reason == truth.failure_reason for e in terminal)
    # The VM's own start-up events and the not-migratable warning pass through untouched.
    others = [(e, o) for e, o in zip(events, out, strict=True) if not o.is_migration]
    assert others and all(e is o for e, o in others)


def test_four_migrations_interleaved_in_one_stream() -> None:
    items = [item for name in sorted(FIXTURES) for item in load(name)]
    tracker = MigrationTracker()
    for e in in_time_order(items):
        tracker.observe(e)
    found = {(m.namespace, m.vm_name): m for m in tracker.migrations()}
    assert len(found) == 4
    for truth, _, running in FIXTURES.values():
        m = found[(truth.namespace, truth.vm)]
        assert (m.source_node, m.target_node, m.migration_name, m.duration_seconds) == (
            truth.source,
            truth.target,
            truth.migration,
            running + 4,
        )


# -- joining rules ----------------------------------------------------------------------------


def test_a_new_migration_of_the_same_vm_starts_clean() -> None:
    tracker = MigrationTracker()
    tracker.observe(created(0, "mig-1"))
    tracker.observe(prepared("node02", 2))
    tracker.observe(migrating("node01", 3))
    tracker.observe(migrated("node01", "node02", 10))
    tracker.observe(succeeded(11, "mig-1"))
    # An hour later it moves back; its first VMI event must not inherit node01 → node02.
    back = tracker.observe(prepared("node01", 3602))
    assert back.migration_name is None and back.source_node is None and back.target_node == "node01"
    first = tracker.observe(created(3600, "mig-2"))
    assert first.migration_name == "mig-2" and first.source_node is None
    done = tracker.observe(migrated("node01", "node01", 3620))  # >= v1.6: the host is the target
    assert (done.migration_name, done.source_node, done.target_node) == ("mig-2", None, "node01")
    assert done.duration_seconds == 20
    assert [m.migration_name for m in tracker.migrations()] == ["mig-1", "mig-2"]


def test_vmi_events_before_the_migration_object_join_it() -> None:
    tracker = MigrationTracker()
    tracker.observe(prepared("node02", 2))
    tracker.observe(migrating("node01", 3))
    e = tracker.observe(created(1))  # arrives late, but reveals the VM through its target pod
    assert (e.vm_name, e.source_node, e.target_node) == ("fedora-vm", "node01", "node02")
    assert len(tracker) == 1
    done = tracker.observe(succeeded(12))
    assert done.duration_seconds == 11  # from the earliest event seen, the late one


def test_out_of_order_terminal_events_and_late_events_within_the_window() -> None:
    tracker = MigrationTracker(reorder_window=timedelta(seconds=10))
    tracker.observe(created(0))
    tracker.observe(prepared("node02", 2))
    tracker.observe(succeeded(20))  # the controller's word arrives first
    late = tracker.observe(migrating("node01", 4))
    assert late.migration_name == "kubevirt-migrate-vm-aaaaa" and late.source_node == "node01"
    vmi_done = tracker.observe(migrated("node01", "node02", 19))
    assert vmi_done.migration_name == "kubevirt-migrate-vm-aaaaa" and vmi_done.duration_seconds == 19
    assert len(tracker) == 1


def test_events_after_the_window_start_a_new_migration() -> None:
    tracker = MigrationTracker(reorder_window=timedelta(seconds=10))
    tracker.observe(created(0))
    tracker.observe(succeeded(20))
    e = tracker.observe(migrating("node01", 31))
    assert e.migration_name is None
    assert len(tracker) == 2


def test_a_retry_seconds_after_a_failure_does_not_join_the_failed_one() -> None:
    # The evacuation controller retries at once, to the same target; the retry's VMI event
    # arrives before its migration object's first events. Its nodes agree with the failed
    # migration's, its time is within the reorder window: only "after the end" tells them apart.
    tracker = MigrationTracker(reorder_window=timedelta(seconds=10))
    tracker.observe(created(0, "mig-1"))
    tracker.observe(prepared("node02", 2))
    tracker.observe(migrating("node01", 3))
    tracker.observe(
        vmi_event("Migrated", "VirtualMachineInstance migration uid uid-mig-1 failed. reason:x", "node01", 9, "Warning")
    )
    retry = tracker.observe(prepared("node02", 13))
    assert retry.migration_name is None and retry.migration_uid is None
    tracker.observe(
        vmim_event("SuccessfulHandOver", "Migration target pod is ready for preparation by virt-handler.", 12, "mig-2")
    )
    second = tracker.observe(created(10, "mig-2"))
    assert second.target_node == "node02" and second.source_node is None
    assert [m.migration_name for m in tracker.migrations()] == ["mig-1", "mig-2"]


def test_start_events_never_join_an_ended_migration() -> None:
    tracker = MigrationTracker()
    tracker.observe(created(0, "mig-1"))
    tracker.observe(succeeded(10, "mig-1"))
    e = tracker.observe(vmi_event("SuccessfulCreate", "Created Migration kubevirt-evacuation-b7x2q", None, 11))
    assert e.migration_name == "kubevirt-evacuation-b7x2q"
    assert len(tracker) == 2


def test_contradicting_nodes_start_a_new_migration() -> None:
    tracker = MigrationTracker()
    tracker.observe(migrating("node01", 0))  # its end was never seen (e.g. the spam filter ate it)
    e = tracker.observe(migrating("node03", 600))
    assert e.source_node == "node03"
    assert len(tracker) == 2
    t = tracker.observe(prepared("node01", 601))  # the target of the new one is the old source
    assert (t.source_node, t.target_node) == ("node03", "node01")


def test_failure_uid_on_the_vmi_joins_the_migration_object() -> None:
    tracker = MigrationTracker()
    tracker.observe(
        vmim_event("SuccessfulHandOver", "Migration target pod is ready for preparation by virt-handler.", 1, uid="u-1")
    )
    failed = tracker.observe(
        vmi_event("Migrated", "VirtualMachineInstance migration uid u-1 failed. reason:boom", "node01", 5, "Warning")
    )
    assert failed.migration_name == "kubevirt-migrate-vm-aaaaa"
    assert failed.duration_seconds is None  # its start (Pending/Scheduling) was never seen
    ctrl = tracker.observe(
        vmim_event("FailedMigration", "source node reported migration failed", 6, uid="u-1", type_="Warning")
    )
    assert (ctrl.vm_name, ctrl.failure_reason, ctrl.source_node) == ("fedora-vm", "boom", "node01")


def test_a_rejected_second_migration_does_not_take_the_vm() -> None:
    tracker = MigrationTracker()
    tracker.observe(created(0, "mig-1"))
    tracker.observe(migrating("node01", 3))
    rejected = tracker.observe(
        vmim_event(
            "FailedMigration",
            "VMI is not eligible for migration because another migration job is in progress.",
            4,
            "mig-2",
            type_="Warning",
        )
    )
    assert rejected.vm_name is None and rejected.source_node is None
    done = tracker.observe(migrated("node01", "node02", 9))
    assert done.migration_name == "mig-1"


def test_same_vm_name_in_two_namespaces() -> None:
    tracker = MigrationTracker()
    tracker.observe(migrating("node01", 0, ns="a"))
    e = tracker.observe(prepared("node01", 1, ns="b"))
    assert (e.source_node, e.target_node) == (None, "node01")
    assert len(tracker) == 2


def test_source_and_target_are_never_the_same_node() -> None:
    tracker = MigrationTracker()
    tracker.observe(prepared("node01", 0))
    e = tracker.observe(migrating("node01", 1))  # a target landing on its source (KubeVirt issue #18946)
    assert e.source_node == "node01" and e.target_node is None
    [m] = tracker.migrations()
    assert m.source_node != m.target_node


def test_non_migration_events_pass_untouched() -> None:
    tracker = MigrationTracker()
    e = vmi_event("Started", "VirtualMachineInstance started.", "node01", 0)
    assert tracker.observe(e) is e
    assert len(tracker) == 0
    nothing = parse_event(reason="Migrating", message="VirtualMachineInstance is migrating.")  # no VM, no name
    assert tracker.observe(nothing) is nothing


# -- bounds -------------------------------------------------------------------------------------


def test_max_entries_bounds_memory_least_recently_seen_first() -> None:
    tracker = MigrationTracker(max_entries=3)
    for i in range(10):
        tracker.observe(migrating("node01", i, vm=f"vm-{i}"))
        assert len(tracker) <= 3
    assert [m.vm_name for m in tracker.migrations()] == ["vm-7", "vm-8", "vm-9"]


def test_ttl_forgets_in_event_time() -> None:
    tracker = MigrationTracker(ttl=timedelta(minutes=10))
    tracker.observe(migrating("node01", 0, vm="old"))
    tracker.observe(migrating("node01", 300, vm="recent"))
    tracker.observe(migrating("node01", 601, vm="new"))
    assert [m.vm_name for m in tracker.migrations()] == ["recent", "new"]
    e = tracker.observe(migrated("node01", "node02", 700, vm="old"))
    assert e.duration_seconds is None  # "old" was forgotten: its start is no longer known


def test_events_without_time_are_bounded_by_entries() -> None:
    tracker = MigrationTracker(max_entries=2)
    for i in range(5):
        tracker.observe(
            parse_event(
                reason="Migrating",
                message="VirtualMachineInstance is migrating.",
                object_kind=VMI,
                object_name=f"vm-{i}",
                host="node01",
            )
        )
    assert len(tracker) == 2
    assert all(m.started is None and m.duration_seconds is None for m in tracker.migrations())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_entries": 0},
        {"max_entries": True},
        {"max_entries": 1.5},
        {"ttl": 60},
        {"ttl": timedelta(-1)},
        {"reorder_window": timedelta(seconds=-1)},
    ],
)
def test_bad_bounds_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MigrationTracker(**kwargs)


def test_observe_refuses_what_is_not_an_event() -> None:
    with pytest.raises(TypeError, match="event"):
        MigrationTracker().observe({"reason": "Migrating"})  # type: ignore[arg-type]


def test_scenario_builder_is_consistent() -> None:
    truth = Truth("ns", "vm", "mig", "uid", "a", "b", "virt-launcher-vm-9xbzq", True, None)
    events = migration_events(truth, start=BASE, handler_v16=True, vmi_uid="vmi-uid", running_seconds=3)
    assert [e["reason"] for e in events] == [
        "SuccessfulCreate",
        "SuccessfulHandOver",
        "PreparingTarget",
        "PreparingTarget",
        "Migrating",
        "Migrated",
        "SuccessfulMigration",
    ]
    assert events[-1]["lastTimestamp"] == "2026-11-20T09:00:08Z"
