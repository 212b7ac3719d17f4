"""VirtualMachineInstanceMigration objects through a real ``otelkv serve`` (issue 10): facts and
durations from KubeVirt's own object, watch and pull shapes, old and new status, consumed or
forwarded, one summary per migration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from otelkv.otlp.k8s_events import to_resource_logs
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import Entry, LokiSink
from tests.migration_objects import object_record, vmim
from tests.scenarios import BASE, VMI, event

SUMMARY = "kubevirt.migration.summary"


@pytest.fixture
def serve(sink: LokiSink, request: pytest.FixtureRequest) -> Iterator[LogsServiceStub]:
    overrides = getattr(request, "param", {})
    running = Service(make_config(sink.url, **{"enrich.summaries": True, **overrides}))
    running.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            yield LogsServiceStub(channel)
    finally:
        running.stop(2)


def send(stub: LogsServiceStub, *resource_logs: ResourceLogs) -> None:
    stub.Export(ExportLogsServiceRequest(resource_logs=list(resource_logs)), timeout=10)


def migrated_on_target(t: float) -> ResourceLogs:
    """KubeVirt >= 1.6: the target's handler records ``Migrated``; the text never names the source."""
    return to_resource_logs(
        event(
            kind=VMI,
            name="fedora-vm",
            namespace="vms",
            uid="vmi-uid",
            reason="Migrated",
            message="The VirtualMachineInstance migrated to node node02.",
            type_="Normal",
            at=BASE + timedelta(seconds=t),
            component="virt-handler",
            host="node02",
        )
    )


def summaries(sink: LokiSink) -> list[Entry]:
    return [e for e in sink.entries if e.metadata.get("event_name") == SUMMARY]


def test_watch_records_of_a_modern_object_give_facts_and_kubevirt_durations(
    sink: LokiSink, serve: LogsServiceStub
) -> None:
    send(serve, object_record(vmim("Pending", t=0), "ADDED"))
    send(serve, object_record(vmim("Running", t=5, version=2)))
    send(serve, migrated_on_target(36))
    [moved] = [e for e in sink.entries if e not in summaries(sink)]  # the objects were read, not forwarded
    assert moved.metadata["kubevirt_migration_source_node"] == "node01"  # only the object knows it
    assert moved.metadata["kubevirt_migration_name"] == "kubevirt-migrate-vm-q7x2p"
    assert moved.metadata["kubevirt_migration_duration_seconds"] == "36"  # from KubeVirt's Pending time
    [summary] = summaries(sink)  # the event made it terminal
    send(serve, object_record(vmim("Succeeded", t=37, version=3)))
    assert len(summaries(sink)) == 1  # the object's own terminal word adds no second one
    assert summary.line == "fedora-vm migrated node01 → node02 in 36 s"
    assert summary.labels["service_name"] == "kubevirt-events" and summary.labels["k8s_namespace_name"] == "vms"
    assert summary.metadata["severity_text"] == "INFO"


def test_a_terminal_object_first_makes_the_summary_with_kubevirts_duration(
    sink: LokiSink, serve: LogsServiceStub
) -> None:
    send(serve, object_record(vmim("Running", t=5, version=2)))
    send(serve, object_record(vmim("Succeeded", t=37, version=3)))
    [summary] = sink.entries
    assert summary.line == "fedora-vm migrated node01 → node02 in 37 s"  # Pending at 0 → Succeeded at 37
    assert summary.metadata["kubevirt_migration_duration_seconds"] == "37"
    assert summary.metadata["kubevirt_migration_mode"] == "PreCopy"
    send(serve, migrated_on_target(36))
    moved = sink.entries[-1]
    assert moved.metadata["kubevirt_migration_duration_seconds"] == "37"  # KubeVirt's, not text-inferred
    assert moved.metadata["kubevirt_migration_source_node"] == "node01"
    assert len(summaries(sink)) == 1


def test_pull_records_of_an_old_object_without_transitions(sink: LokiSink, serve: LogsServiceStub) -> None:
    failed = vmim("Failed", t=20, modern=False, failure="Live migration failed: timed out", version=3)
    send(serve, object_record(vmim("Scheduling", t=1, modern=False), None))
    send(serve, object_record(failed, None))
    send(serve, object_record(failed, None))  # the next pull: the same object again
    [summary] = sink.entries
    assert summary.line == "fedora-vm migration node01 → node02 failed after 20 s: Live migration failed: timed out"
    assert summary.metadata["severity_text"] == "WARN"
    assert summary.metadata["kubevirt_migration_phase"] == "Failed"


def test_a_listed_terminal_object_of_an_unknown_migration_owes_no_summary(
    sink: LokiSink, serve: LogsServiceStub
) -> None:
    # After a collector restart (initial state) or in pull mode: a migration long over.
    send(serve, object_record(vmim("Succeeded", t=37), "ADDED"))
    send(serve, object_record(vmim("Succeeded", t=37), None))
    assert sink.entries == []


@pytest.mark.parametrize("serve", [{"enrich.forward_objects": True}], indirect=True)
def test_forward_objects_sends_them_on_annotated(sink: LokiSink, serve: LogsServiceStub) -> None:
    send(serve, object_record(vmim("Running", t=5)))
    [entry] = sink.entries
    assert entry.line.startswith('{"type":"MODIFIED","object":{')
    assert entry.metadata["kubevirt_migration_source_node"] == "node01"
    assert entry.metadata["kubevirt_vm_name"] == "fedora-vm"


@pytest.mark.parametrize("serve", [{"enrich.summaries": False}], indirect=True)
def test_summaries_can_be_turned_off(sink: LokiSink, serve: LogsServiceStub) -> None:
    send(serve, object_record(vmim("Running", t=5)))
    send(serve, object_record(vmim("Succeeded", t=37)))
    assert sink.entries == []


def test_objects_are_not_events(sink: LokiSink, serve: LogsServiceStub) -> None:
    other: dict[str, Any] = vmim("Running", t=5)
    other["apiVersion"] = "example.com/v1"  # another group's kind of the same name: not KubeVirt's
    send(serve, object_record(other))
    [entry] = sink.entries
    assert entry.labels["service_name"] == "unknown_service"
