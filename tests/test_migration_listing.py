"""A listing of migration objects at start (issue 23 §2, the tracker's side): a migration that
ended while no otelkv ran still gets its one summary; one whose summary was written gets no
second; with no saved state at all, history is not summarised."""

from __future__ import annotations

import json
from pathlib import Path

from otelkv.kubevirt import MigrationTracker, read_migration_object
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink
from tests.migration_objects import object_record, vmim
from tests.test_cluster import export

SUMMARY = "kubevirt.migration.summary"


def restarted(before: MigrationTracker) -> MigrationTracker:
    after = MigrationTracker()
    after.restore_state(json.loads(json.dumps(before.export_state())))
    return after


def listed(tracker: MigrationTracker, obj: dict[str, object]) -> bool:
    tracked = tracker.track_object(read_migration_object(obj), key="listed", listing=True)
    return tracked is not None and tracked.concluded


def test_a_migration_that_ended_while_otelkv_was_down_owes_its_summary() -> None:
    before = MigrationTracker()
    before.track_object(read_migration_object(vmim("Running", t=5, name="other-vm-mig", vm="other-vm")))  # clock: 5 s
    after = restarted(before)
    assert listed(after, vmim("Succeeded", t=40, name="mig-during-downtime"))
    [m] = [m for m in after.migrations() if m.migration_name == "mig-during-downtime"]
    assert m.duration_seconds == 40


def test_one_that_ended_before_the_saved_clock_owes_none() -> None:
    before = MigrationTracker()
    before.track_object(read_migration_object(vmim("Running", t=100, name="other-vm-mig", vm="other-vm")))
    assert not listed(restarted(before), vmim("Succeeded", t=40, name="old-mig"))


def test_one_already_summarised_gets_no_second() -> None:
    before = MigrationTracker()
    done = before.track_object(read_migration_object(vmim("Succeeded", t=40)), key="watched")
    assert done is not None and done.concluded
    assert not listed(restarted(before), vmim("Succeeded", t=40))


def test_without_a_saved_state_nothing_listed_is_summarised() -> None:
    assert not listed(MigrationTracker(), vmim("Succeeded", t=40))


def test_through_serve_with_a_store(sink: LokiSink, tmp_path: Path) -> None:
    settings = {"delivery.store_path": str(tmp_path / "store.db"), "enrich.summaries": True}
    for records in (
        [object_record(vmim("Running", t=5, name="mig-a", vm="vm-a"), "ADDED")],  # otelkv runs, then stops
        [  # the collector's initial list after the restart
            object_record(vmim("Succeeded", t=30, name="mig-a", vm="vm-a", version=2), "ADDED"),
            object_record(vmim("Succeeded", t=60, name="mig-b", vm="vm-b"), "ADDED"),
        ],
        [  # after another restart, the list again but changed (a newer resourceVersion): nothing new
            object_record(vmim("Succeeded", t=30, name="mig-a", vm="vm-a", version=3), "ADDED"),
            object_record(vmim("Succeeded", t=60, name="mig-b", vm="vm-b", version=2), "ADDED"),
        ],
    ):
        running = Service(make_config(sink.url, **settings))
        running.start()
        try:
            export(running.grpc_port, records)
        finally:
            running.stop(2)
    lines = sorted(e.line for e in sink.entries if e.metadata.get("event_name") == SUMMARY)
    assert lines == ["vm-a migrated node01 → node02 in 30 s", "vm-b migrated node01 → node02 in 60 s"]


def test_a_first_start_lists_history_silently(sink: LokiSink, tmp_path: Path) -> None:
    running = Service(
        make_config(sink.url, **{"delivery.store_path": str(tmp_path / "s.db"), "enrich.summaries": True})
    )
    running.start()
    try:
        export(running.grpc_port, [object_record(vmim("Succeeded", t=60, name="mig-b", vm="vm-b"), "ADDED")])
    finally:
        running.stop(2)
    assert sink.entries == []
