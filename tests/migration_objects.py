"""VirtualMachineInstanceMigration objects and the ``k8sobjects`` records that carry them.

Objects follow kubevirt.io/v1 (``staging/src/kubevirt.io/api/core/v1/types.go``): KubeVirt >= 1.0
writes ``status.phaseTransitionTimestamps`` and fills ``status.migrationState`` while the
migration runs; an older one has no transitions and copies ``migrationState`` from the VMI only
once the migration is final. Records follow the receiver's source (contrib
``receiver/k8sobjectsreceiver/unstructured_to_logdata.go``): body ``{"type", "object"}`` in watch
mode, the object alone in pull mode; attributes ``k8s.resource.name`` (and ``event.domain``,
``event.name`` in watch mode); resource ``k8s.namespace.name``; observed time, no timestamp.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from otelkv.otlp.k8s_events import to_resource_logs
from tests.scenarios import BASE, VMI, VMIM, event

PHASES = ("Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running")


def stamp(t: float) -> str:
    return (BASE + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")


def vmim(
    phase: str,
    *,
    t: float,
    start: float = 0,
    modern: bool = True,
    name: str = "kubevirt-migrate-vm-q7x2p",
    vm: str = "fedora-vm",
    ns: str = "vms",
    source: str = "node01",
    target: str = "node02",
    failure: str | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """The object created at second ``start`` as it is once ``phase`` was reached at second ``t``
    (the phases before it one second apart from ``start``)."""
    walked = list(PHASES[: PHASES.index(phase) + 1]) if phase in PHASES else [*PHASES, phase]
    times = [start + i for i in range(len(walked) - 1)] + [t]
    status: dict[str, Any] = {"phase": phase}
    running = "Running" in walked
    state: dict[str, Any] = {
        "sourceNode": source,
        "targetNode": target,
        "targetPod": f"virt-launcher-{vm}-x2bcd",
        "migrationUid": f"uid-{name}",
        "mode": "PreCopy",
    }
    if running:
        state["startTimestamp"] = stamp(times[walked.index("Running")])
    if phase in ("Succeeded", "Failed"):
        state.update(endTimestamp=stamp(t), completed=True, failed=phase == "Failed")
        if failure:
            state["failureReason"] = failure
    if modern:
        status["phaseTransitionTimestamps"] = [
            {"phase": p, "phaseTransitionTimestamp": stamp(when)} for p, when in zip(walked, times, strict=True)
        ]
        if running or phase in ("TargetReady", "PreparingTarget"):
            status["migrationState"] = state
    elif phase in ("Succeeded", "Failed"):
        status["migrationState"] = state  # older releases copy it from the VMI once final
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "resourceVersion": str(1000 + version),
            "creationTimestamp": stamp(start),
            "generation": 1,
        },
        "spec": {"vmiName": vm},
        "status": status,
    }


def any_value(value: Any) -> AnyValue:
    if isinstance(value, dict):
        return AnyValue(
            kvlist_value=KeyValueList(values=[KeyValue(key=k, value=any_value(v)) for k, v in value.items()])
        )
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    return AnyValue(string_value=str(value))


def object_record(
    obj: dict[str, Any], watch_type: str | None = "MODIFIED", observed: datetime | None = None
) -> ResourceLogs:
    """The ResourceLogs the receiver sends for ``obj`` (pull mode when ``watch_type`` is None)."""
    out = ResourceLogs()
    out.resource.attributes.add(key="k8s.namespace.name").value.string_value = obj["metadata"]["namespace"]
    record = out.scope_logs.add().log_records.add()
    when = observed or BASE
    record.observed_time_unix_nano = int(when.timestamp()) * 1_000_000_000
    record.attributes.add(key="k8s.resource.name").value.string_value = "virtualmachineinstancemigrations"
    if watch_type is None:
        record.body.CopyFrom(any_value(obj))
    else:
        record.attributes.add(key="event.domain").value.string_value = "k8s"
        record.attributes.add(key="event.name").value.string_value = obj["metadata"]["name"]
        record.body.CopyFrom(any_value({"type": watch_type, "object": obj}))
    return out


def vmi_migrated(t: float, *, host: str = "node01") -> ResourceLogs:
    """The VMI's ``Migrated`` (``The VirtualMachineInstance migrated to node node02.``) at ``t``,
    as the ``k8s_events`` receiver sends it, recorded by the handler on ``host``."""
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
            host=host,
        )
    )


def vmim_succeeded(t: float, name: str) -> ResourceLogs:
    """The controller's ``SuccessfulMigration`` on migration ``name`` at ``t``."""
    return to_resource_logs(
        event(
            kind=VMIM,
            name=name,
            namespace="vms",
            uid=f"uid-{name}",
            reason="SuccessfulMigration",
            message="Source node reported migration succeeded",
            type_="Normal",
            at=BASE + timedelta(seconds=t),
            component="virtualmachine-controller",
        )
    )


def send(stub: LogsServiceStub, *resource_logs: ResourceLogs) -> None:
    """One Export of ``resource_logs`` (raises on any status but OK)."""
    stub.Export(ExportLogsServiceRequest(resource_logs=list(resource_logs)), timeout=10)
