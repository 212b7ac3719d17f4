"""Odd but valid records through a real ``otelkv serve`` (issue 8 items 8 and 9, issue 10's record
shape): forwarded, enriched with what can be read, never answered with a retryable error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from otelkv.kubevirt import MigrationTracker
from otelkv.otlp.attributes import set_value, to_dict
from otelkv.otlp.enrich import EnrichOptions, enrich
from otelkv.otlp.k8s_events import to_resource_logs
from tests.loki_sink import LokiSink
from tests.scenarios import BASE, VMI, VMIM, event


def vmi(reason: str, message: str, host: str, t: float, vm: str = "fedora-vm", type_: str = "Normal") -> Any:
    return event(
        kind=VMI,
        name=vm,
        namespace="vms",
        uid=f"uid-{vm}",
        reason=reason,
        message=message,
        type_=type_,
        at=BASE + timedelta(seconds=t),
        component="virt-handler",
        host=host,
    )


def vmim(reason: str, message: str, t: float, name: str = "mig-1") -> Any:
    return event(
        kind=VMIM,
        name=name,
        namespace="vms",
        uid=f"uid-{name}",
        reason=reason,
        message=message,
        type_="Normal",
        at=BASE + timedelta(seconds=t),
        component="virtualmachine-controller",
    )


def send(stub: LogsServiceStub, *resource_logs: ResourceLogs) -> None:
    stub.Export(ExportLogsServiceRequest(resource_logs=list(resource_logs)), timeout=10)


def test_go_zero_start_time_without_timestamp_is_forwarded(sink: LokiSink, stub: LogsServiceStub) -> None:
    item = vmi("Migrating", "VirtualMachineInstance is migrating.", "node01", 0)
    for key in ("firstTimestamp", "lastTimestamp"):
        item[key] = None
    del item["metadata"]["creationTimestamp"]
    odd = to_resource_logs(item)
    record = odd.scope_logs[0].log_records[0]
    assert record.time_unix_nano == 0
    assert to_dict(record.attributes)["k8s.event.start_time"] == "0001-01-01 00:00:00 +0000 UTC"
    send(stub, odd)  # the first record after start: used to be UNAVAILABLE OverflowError on every retry
    [entry] = sink.entries
    assert entry.metadata["kubevirt_migration_source_node"] == "node01"


def test_a_far_future_record_does_not_age_out_a_running_migration(sink: LokiSink, stub: LogsServiceStub) -> None:
    send(
        stub,
        to_resource_logs(vmim("SuccessfulCreate", "Created migration target pod virt-launcher-fedora-vm-x2bcd", 0)),
    )
    send(stub, to_resource_logs(vmi("Migrating", "VirtualMachineInstance is migrating.", "node01", 3)))
    future = to_resource_logs(vmi("Migrating", "VirtualMachineInstance is migrating.", "node07", 4, vm="other"))
    future.scope_logs[0].log_records[0].time_unix_nano = 2**63 - 1
    send(stub, future)
    send(stub, to_resource_logs(vmi("Migrated", "The VirtualMachineInstance migrated to node node02.", "node01", 32)))
    done = sink.entries[-1].metadata
    assert (done["kubevirt_migration_name"], done["kubevirt_migration_source_node"]) == ("mig-1", "node01")
    assert done["kubevirt_migration_duration_seconds"] == "32"


def test_the_collector_record_shape_in_all_its_versions() -> None:
    """Lower-case severity, a start time in the collector's zone, the namespace on the resource,
    no node, no reporting_controller (FACTS §1)."""
    items = [
        vmim("SuccessfulCreate", "Created migration target pod virt-launcher-fedora-vm-x2bcd", 0),
        vmi("Migrating", "VirtualMachineInstance is migrating.", "node01", 3),
        vmi("Migrated", "The VirtualMachineInstance migrated to node node02.", "node01", 32),
    ]
    request = ExportLogsServiceRequest()
    for item in items:
        rl = to_resource_logs(item)
        record = rl.scope_logs[0].log_records[0]
        record.time_unix_nano = 0  # only the start time, printed in CET
        offset = {"Migrating": 3, "Migrated": 32}.get(item["reason"], 0)
        local = BASE + timedelta(hours=1, seconds=offset)
        set_value(record.attributes, "k8s.event.start_time", local.strftime("%Y-%m-%d %H:%M:%S +0100 CET"))
        record.severity_text = record.severity_text.lower()
        set_value(record.attributes, "k8s.namespace.name", "")  # moved to the resource
        set_value(rl.resource.attributes, "k8s.namespace.name", "vms")
        kept = [kv for kv in record.attributes if not kv.key.startswith("k8s.event.reporting")]
        del record.attributes[:]
        record.attributes.extend(kept)
        if item["reason"] == "Migrated":
            kept_resource = [kv for kv in rl.resource.attributes if kv.key != "k8s.node.name"]
            del rl.resource.attributes[:]
            rl.resource.attributes.extend(kept_resource)
        request.resource_logs.append(rl)
    result = enrich(request, MigrationTracker(), EnrichOptions(), set().__contains__)
    out = [to_dict(r.scope_logs[0].log_records[0].attributes) for r in result.request.resource_logs]
    assert [o.get("kubevirt.migration.phase") for o in out] == ["Scheduling", "Running", "Succeeded"]
    assert out[2]["kubevirt.migration.source_node"] == "node01"  # from Migrating, though this one has no node
    assert out[2]["kubevirt.migration.duration_seconds"] == 32.0
    resources = [to_dict(r.resource.attributes) for r in result.request.resource_logs]
    assert all(r["k8s.namespace.name"] == "vms" and r["service.name"] == "kubevirt-events" for r in resources)
