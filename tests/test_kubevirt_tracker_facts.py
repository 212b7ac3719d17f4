"""Facts never guessed (issue 10 items 2-4, issue 8 items 8-9): sequences shaped like real pastes.

The shape follows ``kubectl describe vmi`` pastes from public issues (KubeVirt <= 1.5): the VM's
own PodDisruptionBudget is created at boot, a migration comes 40 minutes later, ``shrank
PodDisruptionBudget`` follows ~4 s after ``migrated to node``, and the VM migrates back an hour later.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from otelkv.kubevirt import MigrationTracker, parse_event
from tests.scenarios import BASE, VMI, VMIM
from tests.test_kubevirt_tracker import at, created, migrated, migrating, prepared, succeeded, vmi_event

PDB = "kubevirt-disruption-budget-x7k2p"
BOOT, FIRST, SECOND = 0, 2400, 2400 + 3600


def pdb_created(t: float) -> Any:
    # From the collector: no component (reporting_controller is absent up to v0.147).
    return parse_event(
        reason="SuccessfulCreate",
        message=f"Created PodDisruptionBudget {PDB}",
        event_type="Normal",
        object_kind=VMI,
        object_name="fedora-vm",
        namespace="vms",
        timestamp=at(t),
    )


def shrank(t: float) -> Any:
    return vmi_event("SuccessfulUpdate", f"shrank PodDisruptionBudget {PDB}", None, t)


def one_migration(t: float, name: str, source: str, target: str) -> list[Any]:
    return [
        created(t, name),
        prepared(target, t + 2),
        migrating(source, t + 3),
        migrated(source, target, t + 30),
        succeeded(t + 31, name),
        shrank(t + 34),
    ]


def test_boot_pdb_two_migrations_and_shrinks_make_exactly_two_migrations() -> None:
    tracker = MigrationTracker()
    events = [
        pdb_created(BOOT),
        *one_migration(FIRST, "mig-1", "node01", "node02"),
        *one_migration(SECOND, "mig-2", "node02", "node01"),
    ]
    out = [tracker.observe(e) for e in events]
    first, second = tracker.migrations()
    # Ended at the earliest terminal event (the handler's, t + 30), not the controller's a second later.
    assert (first.migration_name, first.started, first.duration_seconds) == ("mig-1", at(FIRST), 30)
    assert (second.migration_name, second.started, second.duration_seconds) == ("mig-2", at(SECOND), 30)
    assert (first.source_node, first.target_node) == ("node01", "node02")
    assert (second.source_node, second.target_node) == ("node02", "node01")
    assert not out[0].is_migration and out[0].migration_name is None  # the boot PDB is the VM's own
    shrinks = [o for o in out if o.reason == "SuccessfulUpdate"]
    assert [s.migration_name for s in shrinks] == ["mig-1", "mig-2"]  # joined the one that just ended


def test_a_phaseless_event_never_opens_a_migration() -> None:
    # Only VMI events (the VMIM kind filtered out): the shrink after the first migration used to
    # open an empty migration that the second one joined, an hour early (3582 s instead of 27 s).
    tracker = MigrationTracker()
    for e in (migrating("node01", FIRST + 3), migrated("node01", "node02", FIRST + 30), shrank(FIRST + 34)):
        tracker.observe(e)
    assert len(tracker) == 1
    late = tracker.observe(shrank(FIRST + 600))  # long after the end: the VM name only
    assert (late.vm_name, late.migration_name, late.source_node, late.phase) == ("fedora-vm", None, None, None)
    assert len(tracker) == 1
    tracker.observe(migrating("node02", SECOND + 3))
    back = tracker.observe(migrated("node02", "node01", SECOND + 30))
    assert len(tracker) == 2
    assert back.duration_seconds is None  # its start was not seen: no duration rather than 3582 s


def test_a_phaseless_event_of_an_unknown_vm_keeps_only_its_name() -> None:
    tracker = MigrationTracker()
    e = tracker.observe(shrank(10))
    assert (e.vm_name, e.migration_name, e.duration_seconds) == ("fedora-vm", None, None)
    assert len(tracker) == 0


def test_duration_only_when_the_start_was_seen() -> None:
    tracker = MigrationTracker()
    done = tracker.observe(migrated("node01", "node02", 32))  # otelkv started mid-migration
    assert done.duration_seconds is None
    assert tracker.migrations()[0].duration_seconds is None
    tracker = MigrationTracker()
    tracker.observe(migrating("node01", 3))
    assert tracker.observe(migrated("node01", "node02", 32)).duration_seconds is None
    tracker.observe(created(0))  # the start arrives late: now it is known
    assert tracker.observe(succeeded(33)).duration_seconds == 32  # ended at the handler's word, the earliest


def test_a_far_future_stamp_cannot_age_out_the_others() -> None:
    now = at(100)
    tracker = MigrationTracker(ttl=timedelta(minutes=10))
    tracker.observe(created(0), now=now)
    tracker.observe(migrating("node01", 3), now=now)
    far = at(0).replace(year=2262)  # time_unix_nano = 2**63 - 1
    bogus = tracker.observe(
        vmi_event("Migrating", "VirtualMachineInstance is migrating.", "node03", 0, vm="other"), now=now
    )
    bogus = tracker.observe(
        parse_event(
            reason="Migrated",
            message="The VirtualMachineInstance migrated to node n9.",
            event_type="Normal",
            object_kind=VMI,
            object_name="other",
            namespace="vms",
            host="node03",
            timestamp=far,
        ),
        now=now,
    )
    assert bogus.duration_seconds is None
    done = tracker.observe(migrated("node01", "node02", 40), now=now)
    assert (done.migration_name, done.duration_seconds) == ("kubevirt-migrate-vm-aaaaa", 40)


def test_go_zero_and_calendar_end_times_are_undated_not_an_overflow() -> None:
    tracker = MigrationTracker()
    zero = parse_event(
        reason="Migrating",
        message="VirtualMachineInstance is migrating.",
        object_kind=VMI,
        object_name="vm",
        host="node01",
        timestamp="0001-01-01T00:00:00Z",
    )
    tracker.observe(zero)
    end = parse_event(
        reason="Migrated",
        message="The VirtualMachineInstance migrated to node node02.",
        object_kind=VMI,
        object_name="vm",
        host="node01",
        timestamp="9999-12-31T23:59:59Z",
    )
    tracker.observe(end)
    after = tracker.observe(
        parse_event(
            reason="SuccessfulUpdate",
            message=f"shrank PodDisruptionBudget {PDB}",
            object_kind=VMI,
            object_name="vm",
            timestamp="2026-01-01T00:00:00Z",
        )
    )
    assert after.vm_name == "vm"
    assert all(m.started is None and m.ended is None for m in tracker.migrations())


def test_object_kind_constants_match() -> None:
    assert (VMI, VMIM) == ("VirtualMachineInstance", "VirtualMachineInstanceMigration")
    assert BASE.tzinfo is not None


def test_a_new_migration_just_after_a_forgotten_one_inherits_nothing() -> None:
    # Found by the long profile (max_entries 2): the old migration's named record was forgotten,
    # its VMI "Migrated" left a VM-only record; the VM's next migration, a second later, merged
    # with it and inherited its source node.
    tracker = MigrationTracker(max_entries=2)
    tracker.observe(migrated("node01", "node02", 10))  # VM-only: the named record is gone
    tracker.observe(succeeded(11, "mig-1"))
    new = tracker.observe(created(12, "mig-2"))
    assert (new.migration_name, new.source_node, new.target_node) == ("mig-2", None, None)
    back = tracker.observe(migrating("node02", 15))
    assert (back.migration_name, back.source_node) == ("mig-2", "node02")
