"""read_migration_object and MigrationTracker.track_object: KubeVirt's word wins over event text."""

from __future__ import annotations

from datetime import timedelta

import pytest

from otelkv.kubevirt import MigrationTracker, read_migration_object
from tests.migration_objects import vmim
from tests.scenarios import BASE
from tests.test_kubevirt_tracker import created, migrated, prepared


def test_a_modern_object_states_every_fact() -> None:
    obj = read_migration_object(vmim("Failed", t=40, start=2, failure="Live migration aborted"))
    assert (obj.namespace, obj.name, obj.uid, obj.vm_name, obj.phase) == (
        "vms",
        "kubevirt-migrate-vm-q7x2p",
        "uid-kubevirt-migrate-vm-q7x2p",
        "fedora-vm",
        "Failed",
    )
    assert (obj.source_node, obj.target_node, obj.target_pod) == ("node01", "node02", "virt-launcher-fedora-vm-x2bcd")
    assert (obj.failure_reason, obj.mode, obj.terminal) == ("Live migration aborted", "PreCopy", True)
    assert (obj.started, obj.ended, obj.duration_seconds) == (
        BASE + timedelta(seconds=2),
        BASE + timedelta(seconds=40),
        38,
    )


def test_an_old_object_starts_at_its_creation_and_ends_at_the_handlers_end() -> None:
    running = read_migration_object(vmim("Running", t=9, modern=False))
    assert (running.phase, running.source_node, running.ended) == ("Running", None, None)
    done = read_migration_object(vmim("Succeeded", t=30, modern=False))
    assert (done.source_node, done.duration_seconds) == ("node01", 30)


JUNK = [
    {},
    {"status": "x", "spec": 3, "metadata": []},
    {"status": {"phase": "Exploded", "phaseTransitionTimestamps": [1, {"phase": 2}]}},
]


@pytest.mark.parametrize("junk", JUNK)
def test_fields_of_unexpected_types_are_unknown(junk: dict[str, object]) -> None:
    obj = read_migration_object(junk)
    assert (obj.name, obj.phase, obj.started) == (None, None, None)
    assert MigrationTracker().track_object(obj) is None  # names no migration


def test_object_facts_win_over_what_event_text_suggested() -> None:
    tracker = MigrationTracker()
    tracker.observe(created(0, "kubevirt-migrate-vm-q7x2p", uid="uid-kubevirt-migrate-vm-q7x2p"))
    guessed = tracker.observe(prepared("node09", 2))  # a host that is not the real target
    assert guessed.target_node == "node09"
    tracker.track_object(read_migration_object(vmim("Running", t=5)))
    done = tracker.observe(migrated("node02", "node02", 36))  # >= v1.6: host is the target
    assert (done.migration_name, done.source_node, done.target_node) == (
        "kubevirt-migrate-vm-q7x2p",
        "node01",
        "node02",
    )
    [m] = tracker.migrations()
    assert (m.source_node, m.target_node, m.started) == ("node01", "node02", BASE)


def test_a_deletion_of_an_unknown_migration_opens_nothing() -> None:
    tracker = MigrationTracker()
    assert tracker.track_object(read_migration_object(vmim("Succeeded", t=30)), deleted=True) is None
    assert len(tracker) == 0


def test_a_listed_old_migration_does_not_displace_the_running_one() -> None:
    tracker = MigrationTracker()
    tracker.observe(prepared("node02", 7200))  # a migration running now, known only from the VMI side
    old = vmim("Succeeded", t=40, name="kubevirt-migrate-vm-old00")  # finished two hours ago
    listed = tracker.track_object(read_migration_object(old), listing=True)
    assert listed is not None and not listed.concluded
    e = tracker.observe(migrated("node01", "node02", 7230))
    assert e.migration_name is None and e.source_node == "node01"
    assert len(tracker) == 2
