"""Write the ``kubectl get events -o json`` fixtures of whole migrations (run from the repo root).

``python -m tests.data.make_fixtures`` rewrites ``tests/data/migration-*.json`` and the demo's
``examples/kubevirt-events.json`` (all of them plus events of other kinds, as ``-A`` lists them). Each file is
one namespace's events as the API server lists them — sorted by event name, which is
``<object>.<hex time>``, so a VMI's events come before its migration object's, whatever their
time — with the VM's own start-up events around the migration, a repeated (counted) event, and
the emitters of the KubeVirt generation the file is named after.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.scenarios import BASE, VMI, Truth, event, migration_events

HERE = Path(__file__).parent
#: The demo's recorded stream: all four migrations, two namespaces, both emitter generations.
EXAMPLE = HERE.parent.parent / "examples" / "kubevirt-events.json"

FIXTURES: dict[str, tuple[Truth, bool, int]] = {  # truth, KubeVirt >= 1.6, seconds running
    "migration-succeeded-kubevirt-1.5.json": (
        Truth(
            "virtualmachines",
            "fedora-vm",
            "kubevirt-migrate-vm-x7k2p",
            "3f1f5b9e-6c1a-4f7e-9a57-2f0d1c6e8a11",
            "node01",
            "node02",
            "virt-launcher-fedora-vm-9xbzq",
            True,
            None,
        ),
        False,
        27,
    ),
    "migration-failed-kubevirt-1.5.json": (
        Truth(
            "virtualmachines",
            "rhel9-db.prod",
            "kubevirt-evacuation-4tq8z",
            "8c2d7e41-0b5f-4d0e-bc1a-7a3e9f5d2c44",
            "worker-a.lab.example.com",
            "worker-b.lab.example.com",
            "virt-launcher-rhel9-db.prod-m5w7r",
            False,
            "Live migration failed error encountered during MigrateToURI3 libvirt api call: operation failed: "
            "migration out job: unexpectedly failed",
        ),
        False,
        12,
    ),
    "migration-succeeded-kubevirt-1.6.json": (
        Truth(
            "tenant-a",
            "web-01",
            "kubevirt-migrate-vm-2hkbc",
            "c6a4f0d2-93b8-4e1f-8d7c-5b2a9e0f1d33",
            "node03",
            "node01",
            "virt-launcher-web-01-zq8xt",
            True,
            None,
        ),
        True,
        41,
    ),
    "migration-failed-kubevirt-1.6.json": (
        Truth(
            "tenant-a",
            "web-02",
            "kubevirt-workload-update-n7vds",
            "1b9e8d7c-2a3f-4e5d-9c8b-7a6f5e4d3c22",
            "node01",
            "node03",
            "virt-launcher-web-02-hkg4w",
            False,
            "Live migration is not completed after 150 seconds and has been aborted",
        ),
        True,
        152,
    ),
}


def fixture(truth: Truth, handler_v16: bool, running: int) -> dict[str, Any]:
    vmi_uid = f"0000{truth.migration_uid[4:]}"[::-1]
    start = BASE + timedelta(minutes=len(truth.vm))
    events = [
        event(
            kind=VMI,
            name=truth.vm,
            namespace=truth.namespace,
            uid=vmi_uid,
            reason="SuccessfulCreate",
            message=f"Created virtual machine pod virt-launcher-{truth.vm}-b2c4d",
            type_="Normal",
            at=start - timedelta(minutes=30),
            component="virtualmachine-controller",
        ),
        event(
            kind=VMI,
            name=truth.vm,
            namespace=truth.namespace,
            uid=vmi_uid,
            reason="Started",
            message="VirtualMachineInstance started.",
            type_="Normal",
            at=start - timedelta(minutes=29),
            component="virt-handler",
            host=truth.source,
        ),
        *migration_events(truth, start=start, handler_v16=handler_v16, vmi_uid=vmi_uid, running_seconds=running),
    ]
    prepared = next(e for e in events if e["message"] == "VirtualMachineInstance Migration Target Prepared.")
    prepared["count"] = 3  # the target handler repeats it while the domain syncs
    if not truth.succeeded:
        # KubeVirt's evacuation/workload updater tries again; the VM still runs on the source.
        events.append(
            event(
                kind=VMI,
                name=truth.vm,
                namespace=truth.namespace,
                uid=vmi_uid,
                reason="Migrated",
                message="EvictionStrategy is set but vmi is not migratable; cannot migrate VMI: PVC scratch is "
                "not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access "
                "mode)",
                type_="Warning",
                at=start + timedelta(minutes=5),
                component="virt-handler",
                host=truth.source,
            )
        )
    events.sort(key=lambda e: e["metadata"]["name"])
    return {"apiVersion": "v1", "items": events, "kind": "List", "metadata": {"resourceVersion": ""}}


def other_events() -> list[dict[str, Any]]:
    """Events of other kinds that ``kubectl get events -A`` also lists (the collector's filter drops them)."""
    pod = event(
        kind="Pod",
        name="coredns-7db6d8ff4d-2x9lq",
        namespace="kube-system",
        uid="5e1d0c3b-pod",
        reason="Unhealthy",
        message="Readiness probe failed: HTTP probe failed with statuscode: 503",
        type_="Warning",
        at=BASE + timedelta(minutes=3),
        component="kubelet",
        host="node02",
    )
    node = event(
        kind="Node",
        name="node03",
        namespace="default",
        uid="node03",
        reason="NodeReady",
        message="Node node03 status is now: NodeReady",
        type_="Normal",
        at=BASE + timedelta(minutes=1),
        component="kubelet",
        host="node03",
    )
    pod["involvedObject"]["apiVersion"] = node["involvedObject"]["apiVersion"] = "v1"
    return [pod, node]


def main() -> None:
    everything: list[dict[str, Any]] = other_events()
    for name, (truth, handler_v16, running) in FIXTURES.items():
        listing = fixture(truth, handler_v16, running)
        (HERE / name).write_text(json.dumps(listing, indent=4) + "\n")
        everything.extend(listing["items"])
    # kubectl get events -A -o json: every namespace, listed by namespace and name.
    everything.sort(key=lambda e: (e["metadata"]["namespace"], e["metadata"]["name"]))
    listing = {"apiVersion": "v1", "items": everything, "kind": "List", "metadata": {"resourceVersion": ""}}
    EXAMPLE.write_text(json.dumps(listing, indent=4) + "\n")


if __name__ == "__main__":
    main()
