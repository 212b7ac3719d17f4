"""Why did it migrate (issue 21 §1): ``kubevirt.migration.trigger`` from the migration object's
annotations (authoritative) or, from events alone, its name's generateName prefix — never guessed;
an evacuation's drained node is the source node even without ``migrationState``."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.kubevirt import MigrationTracker, read_migration_object
from otelkv.otlp.summary import line
from tests.loki_sink import LokiSink
from tests.migration_objects import object_record, send, vmi_migrated, vmim, vmim_succeeded
from tests.test_kubevirt_tracker import created, migrated, migrating, succeeded

EVACUATION = "kubevirt-evacuation-4tq8z"


def evacuation(phase: str, *, t: float, drained: str = "node01", state: bool = True, **kw: Any) -> dict[str, Any]:
    """A migration made by a node drain: generateName ``kubevirt-evacuation-``, the annotation
    naming the node; ``state=False``: no ``migrationState`` (KubeVirt before v0.59)."""
    obj = vmim(phase, t=t, name=EVACUATION, **kw)
    obj["metadata"]["annotations"] = {"kubevirt.io/evacuationMigration": drained}
    obj["metadata"]["generateName"] = "kubevirt-evacuation-"
    if not state:
        obj["status"].pop("migrationState", None)
    return obj


# -- the library ------------------------------------------------------------------------------


def test_the_objects_annotation_says_evacuation_and_names_the_source_node() -> None:
    obj = read_migration_object(evacuation("Succeeded", t=30, state=False, modern=False))
    assert (obj.trigger, obj.evacuated_node, obj.source_node, obj.target_node) == (
        "evacuation",
        "node01",
        "node01",  # the drained node: the source, though no migrationState says it
        None,
    )


def test_the_objects_own_source_node_wins_over_the_annotation() -> None:
    obj = read_migration_object(evacuation("Succeeded", t=30, drained="node07", source="node01"))
    assert (obj.trigger, obj.source_node, obj.evacuated_node) == ("evacuation", "node01", "node07")


def test_the_annotation_beats_the_name() -> None:
    obj = vmim("Running", t=5, name="my-own-migration")
    obj["metadata"]["annotations"] = {"kubevirt.io/workloadUpdateMigration": ""}
    tracker = MigrationTracker()
    tracked = tracker.track_object(read_migration_object(obj))
    assert tracked is not None
    assert (tracked.event.trigger, tracked.event.trigger_source) == ("workload-update", "object")
    [m] = tracker.migrations()
    assert (m.trigger, m.trigger_source) == ("workload-update", "object")


@pytest.mark.parametrize(
    ("name", "trigger"),
    [
        ("kubevirt-evacuation-4tq8z", "evacuation"),
        ("kubevirt-workload-update-n7vds", "workload-update"),
        ("kubevirt-migrate-vm-x7k2p", "user"),
        ("nightly-rebalance-1", "other"),
    ],
)
def test_from_events_alone_the_name_says_it(name: str, trigger: str) -> None:
    tracker = MigrationTracker()
    out = [
        tracker.observe(e)
        for e in (
            created(0, name),
            migrating("node01", 3),
            migrated("node01", "node02", 30),
            succeeded(31, name),
        )
    ]
    assert [(e.trigger, e.trigger_source) for e in out] == [(trigger, "name")] * 4  # every record of it
    [m] = tracker.migrations()
    assert (m.trigger, m.trigger_source) == (trigger, "name")


def test_without_the_object_or_a_name_nothing_is_guessed() -> None:
    tracker = MigrationTracker()
    out = [tracker.observe(e) for e in (migrating("node01", 3), migrated("node01", "node02", 30))]
    assert [(e.trigger, e.trigger_source) for e in out] == [(None, None)] * 2
    [m] = tracker.migrations()
    assert (m.trigger, m.trigger_source) == (None, None)
    assert line(m) == "fedora-vm migrated node01 → node02"  # no cause in brackets


def test_a_missed_migrating_event_still_gives_the_evacuations_source_node() -> None:
    """KubeVirt without ``migrationState``, the ``Migrating`` event missed: only the annotation
    says where from."""
    tracker = MigrationTracker()
    tracker.track_object(read_migration_object(evacuation("Running", t=5, state=False)))
    done = tracker.observe(migrated("node01", "node02", 30))  # recorded by the source handler; no source in text
    assert (done.source_node, done.target_node, done.trigger, done.trigger_source) == (
        "node01",
        "node02",
        "evacuation",
        "object",
    )
    [m] = tracker.migrations()
    assert line(m) == "fedora-vm migrated node01 → node02 in 30 s (node01 drain)"


def test_the_objects_trigger_survives_a_restart() -> None:
    tracker = MigrationTracker()
    obj = vmim("Running", t=5, name="hand-made")
    obj["metadata"]["annotations"] = {"kubevirt.io/evacuationMigration": "node01"}
    tracker.track_object(read_migration_object(obj))
    again = MigrationTracker()
    again.restore_state(json.loads(json.dumps(tracker.export_state())))
    [m] = again.migrations()
    assert (m.trigger, m.trigger_source) == ("evacuation", "object")


@pytest.mark.parametrize(
    ("trigger", "source", "text"),
    [
        ("evacuation", "node01", "fedora-vm migrated node01 → node02 in 32 s (node01 drain)"),
        ("workload-update", "node01", "fedora-vm migrated node01 → node02 in 32 s (KubeVirt update)"),
        ("user", "node01", "fedora-vm migrated node01 → node02 in 32 s"),
        ("other", "node01", "fedora-vm migrated node01 → node02 in 32 s"),
        ("evacuation", None, "fedora-vm migrated ? → node02 in 32 s (node drain)"),
    ],
)
def test_the_summary_line_names_the_cause(trigger: str, source: str | None, text: str) -> None:
    tracker = MigrationTracker()
    for e in (created(0), migrating("node01", 3), migrated("node01", "node02", 32)):
        tracker.observe(e)
    [m] = tracker.migrations()
    assert line(replace(m, trigger=trigger, source_node=source)) == text


def test_a_failure_names_the_cause_before_the_reason() -> None:
    tracker = MigrationTracker()
    tracker.track_object(
        read_migration_object(evacuation("Failed", t=12, failure="Live migration failed: timed out", target="node02"))
    )
    [m] = tracker.migrations()
    assert (
        line(m)
        == "fedora-vm migration node01 → node02 failed after 12 s (node01 drain): Live migration failed: timed out"
    )


# -- through otelkv serve -----------------------------------------------------------------------


def test_serve_writes_the_trigger_on_every_record_and_the_summary(sink: LokiSink, summarising: LogsServiceStub) -> None:
    send(summarising, object_record(evacuation("Running", t=5, state=False), "ADDED"))
    send(summarising, vmi_migrated(30), vmim_succeeded(31, EVACUATION))
    summaries = [e for e in sink.entries if e.metadata.get("event_name") == "kubevirt.migration.summary"]
    events = [e for e in sink.entries if e not in summaries]
    assert len(events) == 2 and len(summaries) == 1
    for entry in sink.entries:
        assert entry.metadata["kubevirt_migration_trigger"] == "evacuation"
        assert entry.metadata["kubevirt_migration_trigger_source"] == "object"
        assert entry.metadata["kubevirt_migration_source_node"] == "node01"  # the drained node
    assert summaries[0].line == "fedora-vm migrated node01 → node02 in 30 s (node01 drain)"


def test_serve_from_events_alone_says_the_name_was_read(sink: LokiSink, summarising: LogsServiceStub) -> None:
    send(summarising, vmi_migrated(30), vmim_succeeded(31, "kubevirt-workload-update-n7vds"))
    named = [e for e in sink.entries if "kubevirt_migration_name" in e.metadata]
    assert named and all(e.metadata["kubevirt_migration_trigger"] == "workload-update" for e in named)
    assert all(e.metadata["kubevirt_migration_trigger_source"] == "name" for e in named)
    # The VMI's own record, before the migration's name was known, says nothing: never a guess.
    [first] = [e for e in sink.entries if e.line.startswith("The VirtualMachineInstance migrated")]
    assert "kubevirt_migration_trigger" not in first.metadata
