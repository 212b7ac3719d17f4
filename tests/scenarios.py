"""Build the Kubernetes Events one live migration records, as KubeVirt's emitters record them.

Used by the tracker's state-machine test and to write the fixtures under ``tests/data/``.
Each event is a core/v1 Event as ``kubectl get events -o json`` prints it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

VMI = "VirtualMachineInstance"
VMIM = "VirtualMachineInstanceMigration"
BASE = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Truth:
    """What really happened in one migration: the facts the tracker may report, and no other."""

    namespace: str
    vm: str
    migration: str
    migration_uid: str
    source: str
    target: str
    target_pod: str
    succeeded: bool
    failure_reason: str | None


def event(
    *,
    kind: str,
    name: str,
    namespace: str,
    uid: str,
    reason: str,
    message: str,
    type_: str,
    at: datetime,
    component: str,
    host: str = "",
    count: int = 1,
) -> dict[str, Any]:
    """One core/v1 Event, shaped like an item of ``kubectl get events -o json``."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            # client-go names an event "<object>.<UnixNano in hex>"
            "name": f"{name}.{int(at.timestamp() * 1e9) + len(reason + message):x}",
            "namespace": namespace,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, name + reason + message + stamp)),
            "resourceVersion": "1",
            "creationTimestamp": stamp,
        },
        "involvedObject": {
            "apiVersion": "kubevirt.io/v1",
            "kind": kind,
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "1",
        },
        "reason": reason,
        "message": message,
        "source": {"component": component, **({"host": host} if host else {})},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": count,
        "type": type_,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": host,
    }


def migration_events(
    truth: Truth, *, start: datetime, handler_v16: bool, vmi_uid: str, running_seconds: int = 30
) -> list[dict[str, Any]]:
    """The events of one migration in the order KubeVirt records them.

    One second apart, but ``running_seconds`` between ``Migrating`` and the outcome: the whole
    migration lasts ``running_seconds + 4`` seconds, to the handler's word on its outcome (its end:
    the earliest terminal event), ``+ 5`` to the controller's.
    ``handler_v16``: the Normal ``Migrated`` event comes from the target handler (KubeVirt >= 1.6)
    instead of the source handler (<= 1.5).
    """
    offsets = iter([0, 1, 2, 3, 4, 4 + running_seconds, 5 + running_seconds])
    t = iter(start + timedelta(seconds=next(offsets)) for _ in range(7))
    ns = truth.namespace

    def vmim(reason: str, message: str, type_: str = "Normal") -> dict[str, Any]:
        return event(
            kind=VMIM,
            name=truth.migration,
            namespace=ns,
            uid=truth.migration_uid,
            reason=reason,
            message=message,
            type_=type_,
            at=next(t),
            component="virtualmachine-controller",
        )

    def vmi(reason: str, message: str, host: str, type_: str = "Normal") -> dict[str, Any]:
        return event(
            kind=VMI,
            name=truth.vm,
            namespace=ns,
            uid=vmi_uid,
            reason=reason,
            message=message,
            type_=type_,
            at=next(t),
            component="virt-handler",
            host=host,
        )

    events = [
        vmim("SuccessfulCreate", f"Created migration target pod {truth.target_pod}"),
        vmim("SuccessfulHandOver", "Migration target pod is ready for preparation by virt-handler."),
        vmi(
            "PreparingTarget",
            "Migration Target is listening at 10.244.1.17, on ports: 40113,34211",
            truth.target,
        ),
        vmi("PreparingTarget", "VirtualMachineInstance Migration Target Prepared.", truth.target),
        vmi("Migrating", "VirtualMachineInstance is migrating.", truth.source),
    ]
    if truth.succeeded:
        emitter = truth.target if handler_v16 else truth.source
        events.append(vmi("Migrated", f"The VirtualMachineInstance migrated to node {truth.target}.", emitter))
        events.append(vmim("SuccessfulMigration", "Source node reported migration succeeded"))
    else:
        events.append(
            vmi(
                "Migrated",
                f"VirtualMachineInstance migration uid {truth.migration_uid} failed. reason:{truth.failure_reason}",
                truth.source,
                type_="Warning",
            )
        )
        events.append(vmim("FailedMigration", "source node reported migration failed", type_="Warning"))
    return events
