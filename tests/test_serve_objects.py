"""VirtualMachineInstanceMigration objects through a real ``otelkv serve`` (issue 10): facts and
durations from KubeVirt's own object, watch and pull shapes, old and new status, consumed or
forwarded, one summary per migration."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from tests.loki_sink import Entry, LokiSink
from tests.migration_objects import object_record, send, vmi_migrated, vmim

SUMMARY = "kubevirt.migration.summary"


def migrated_on_target(t: float) -> ResourceLogs:
    """KubeVirt >= 1.6: the target's handler records ``Migrated``; the text never names the source."""
    return vmi_migrated(t, host="node02")


def summaries(sink: LokiSink) -> list[Entry]:
    return [e for e in sink.entries if e.metadata.get("event_name") == SUMMARY]


def test_watch_records_of_a_modern_object_give_facts_and_kubevirt_durations(
    sink: LokiSink, summarising: LogsServiceStub
) -> None:
    send(summarising, object_record(vmim("Pending", t=0), "ADDED"))
    send(summarising, object_record(vmim("Running", t=5, version=2)))
    send(summarising, migrated_on_target(36))
    [moved] = [e for e in sink.entries if e not in summaries(sink)]  # the objects were read, not forwarded
    assert moved.metadata["kubevirt_migration_source_node"] == "node01"  # only the object knows it
    assert moved.metadata["kubevirt_migration_name"] == "kubevirt-migrate-vm-q7x2p"
    assert moved.metadata["kubevirt_migration_duration_seconds"] == "36"  # from KubeVirt's Pending time
    [summary] = summaries(sink)  # the event made it terminal
    send(summarising, object_record(vmim("Succeeded", t=37, version=3)))
    assert len(summaries(sink)) == 1  # the object's own terminal word adds no second one
    assert summary.line == "fedora-vm migrated node01 → node02 in 36 s"
    assert summary.labels["service_name"] == "kubevirt-events" and summary.labels["k8s_namespace_name"] == "vms"
    assert summary.metadata["severity_text"] == "INFO"


def test_a_terminal_object_first_makes_the_summary_with_kubevirts_duration(
    sink: LokiSink, summarising: LogsServiceStub
) -> None:
    send(summarising, object_record(vmim("Running", t=5, version=2)))
    send(summarising, object_record(vmim("Succeeded", t=37, version=3)))
    [summary] = sink.entries
    assert summary.line == "fedora-vm migrated node01 → node02 in 37 s"  # Pending at 0 → Succeeded at 37
    assert summary.metadata["kubevirt_migration_duration_seconds"] == "37"
    assert summary.metadata["kubevirt_migration_mode"] == "PreCopy"
    send(summarising, migrated_on_target(36))
    moved = sink.entries[-1]
    assert moved.metadata["kubevirt_migration_duration_seconds"] == "37"  # KubeVirt's, not text-inferred
    assert moved.metadata["kubevirt_migration_source_node"] == "node01"
    assert len(summaries(sink)) == 1


def test_pull_records_of_an_old_object_without_transitions(sink: LokiSink, summarising: LogsServiceStub) -> None:
    failed = vmim("Failed", t=20, modern=False, failure="Live migration failed: timed out", version=3)
    send(summarising, object_record(vmim("Scheduling", t=1, modern=False), None))
    send(summarising, object_record(failed, None))
    send(summarising, object_record(failed, None))  # the next pull: the same object again
    [summary] = sink.entries
    assert summary.line == "fedora-vm migration node01 → node02 failed after 20 s: Live migration failed: timed out"
    assert summary.metadata["severity_text"] == "WARN"
    assert summary.metadata["kubevirt_migration_phase"] == "Failed"


def test_a_listed_terminal_object_of_an_unknown_migration_owes_no_summary(
    sink: LokiSink, summarising: LogsServiceStub
) -> None:
    # After a collector restart (initial state) or in pull mode: a migration long over.
    send(summarising, object_record(vmim("Succeeded", t=37), "ADDED"))
    send(summarising, object_record(vmim("Succeeded", t=37), None))
    assert sink.entries == []


@pytest.mark.parametrize("summarising", [{"enrich.forward_objects": True}], indirect=True)
def test_forward_objects_sends_them_on_annotated(sink: LokiSink, summarising: LogsServiceStub) -> None:
    send(summarising, object_record(vmim("Running", t=5)))
    [entry] = sink.entries
    assert entry.line.startswith('{"type":"MODIFIED","object":{')
    assert entry.metadata["kubevirt_migration_source_node"] == "node01"
    assert entry.metadata["kubevirt_vm_name"] == "fedora-vm"


@pytest.mark.parametrize("summarising", [{"enrich.summaries": False}], indirect=True)
def test_summaries_can_be_turned_off(sink: LokiSink, summarising: LogsServiceStub) -> None:
    send(summarising, object_record(vmim("Running", t=5)))
    send(summarising, object_record(vmim("Succeeded", t=37)))
    assert sink.entries == []


def test_objects_are_not_events(sink: LokiSink, summarising: LogsServiceStub) -> None:
    other: dict[str, Any] = vmim("Running", t=5)
    other["apiVersion"] = "example.com/v1"  # another group's kind of the same name: not KubeVirt's
    send(summarising, object_record(other))
    [entry] = sink.entries
    assert entry.labels["service_name"] == "unknown_service"
