"""What real clusters do to KubeVirt's messages, each case pinned by a test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from otelkv.kubevirt import parse_event

VMI, VMIM = "VirtualMachineInstance", "VirtualMachineInstanceMigration"


def vmi(reason: str, message: str, **kw: Any) -> Any:
    kw.setdefault("object_name", "fedora-vm")
    return parse_event(reason=reason, message=message, object_kind=VMI, namespace="virtualmachines", **kw)


def vmim(reason: str, message: str, **kw: Any) -> Any:
    kw.setdefault("object_name", "kubevirt-evacuation-h2x9k")
    return parse_event(reason=reason, message=message, object_kind=VMIM, namespace="virtualmachines", **kw)


def test_the_public_contract_example() -> None:
    e = parse_event(
        reason="Migrated",
        message="The VirtualMachineInstance migrated to node node02.",
        event_type="Normal",
        object_kind=VMI,
        object_name="fedora-vm",
        namespace="virtualmachines",
        component="virt-handler",
        host="node01",
    )
    assert e.vm_name == "fedora-vm" and e.phase == "Succeeded"
    assert e.target_node == "node02" and e.source_node == "node01"


def test_fqdn_node_loses_only_the_final_period() -> None:
    e = vmi(
        "Migrated",
        "The VirtualMachineInstance migrated to node ocp4-worker1.aio.example.com.",
        event_type="Normal",
        host="ocp4-worker0.aio.example.com",
    )
    assert e.target_node == "ocp4-worker1.aio.example.com"
    assert e.source_node == "ocp4-worker0.aio.example.com"


def test_migrated_from_the_target_handler_says_nothing_of_the_source() -> None:
    e = vmi("Migrated", "The VirtualMachineInstance migrated to node node02.", event_type="Normal", host="node02")
    assert (e.source_node, e.target_node) == (None, "node02")


@pytest.mark.parametrize("vm", ["fedora-vm", "web.prod-01", "a", "db-1.eu-west.tenant-a", "x" * 63])
def test_vm_names_with_dots_and_dashes_from_the_object_and_from_messages(vm: str) -> None:
    assert vmi("Migrating", "VirtualMachineInstance is migrating.", object_name=vm).vm_name == vm
    e = vmim(
        "migrationTargetPodUnschedulable",
        f"Migration target pod for VMI [virtualmachines/{vm}] is currently unschedulable.",
    )
    assert e.vm_name == vm and e.phase == "Scheduling"


def test_migration_object_vm_name_from_the_target_pod() -> None:
    e = vmim("SuccessfulCreate", "Created migration target pod virt-launcher-web.prod-01-x2bcd")
    assert e.vm_name == "web.prod-01"
    assert e.migration_name == "kubevirt-evacuation-h2x9k"
    assert e.target_pod == "virt-launcher-web.prod-01-x2bcd"


def test_a_cut_generate_name_gives_no_vm_name() -> None:
    long_vm = "v" * 50  # "virt-launcher-" + 50 + "-" > 58: the API server cut the base
    pod = f"virt-launcher-{long_vm}-"[:58] + "x2bcd"
    e = vmim("SuccessfulCreate", f"Created migration target pod {pod}")
    assert e.target_pod == pod and e.vm_name is None


def test_a_cut_generate_name_ending_in_a_dash_gives_no_vm_name() -> None:
    vm = "a" * 43 + "-" + "b" * 10  # the 58-character cut falls right after the dash
    pod = f"virt-launcher-{vm}-"[:58] + "x2bcd"
    assert pod == "virt-launcher-" + "a" * 43 + "-x2bcd"  # reads like VM "aaa…a": it is not
    assert vmim("SuccessfulCreate", f"Created migration target pod {pod}").vm_name is None


def test_pod_without_the_random_suffix_gives_no_vm_name() -> None:
    assert vmim("SuccessfulCreate", "Created migration target pod my-own-pod").vm_name is None


def test_migration_object_events_carry_uid_and_name() -> None:
    e = vmim(
        "SuccessfulHandOver",
        "Migration target pod is ready for preparation by virt-handler.",
        object_uid="0c9e3b9a-5d1f-4c47-b2f5-1d5a1e3b2c11",
    )
    assert e.migration_uid == "0c9e3b9a-5d1f-4c47-b2f5-1d5a1e3b2c11"
    assert e.phase == "PreparingTarget" and e.vm_name is None and e.is_migration


def test_evacuation_created_migration_names_it_on_the_vmi() -> None:
    e = vmi("SuccessfulCreate", "Created Migration kubevirt-evacuation-h2x9k", component="evacuation-controller")
    assert e.migration_name == "kubevirt-evacuation-h2x9k" and e.phase == "Pending"
    e = vmi("SuccessfulCreate", "Created Migration kubevirt-workload-update-7z4vq for automated workload update")
    assert e.migration_name == "kubevirt-workload-update-7z4vq"


@pytest.mark.parametrize("address", ["10.244.1.17", "192.168.100.4", "fd00:10:244::1f", "2001:db8::8a2e:370:7334"])
def test_listening_at_reads_ipv4_and_ipv6(address: str) -> None:
    e = vmi(
        "PreparingTarget", f"Migration Target is listening at {address}, on ports: 40113,34211,41239", host="node02"
    )
    assert e.target_address == address
    assert e.target_ports == (40113, 34211, 41239)
    assert e.target_node == "node02" and e.phase == "TargetReady"


def test_listening_at_before_v0_15_reads_ip_and_port() -> None:
    assert vmi("PreparingTarget", "Migration Target is listening at 10.244.1.17:40113").target_address == (
        "10.244.1.17"
    )
    assert vmi("PreparingTarget", "Migration Target is listening at [fd00::1]:40113").target_address == "fd00::1"
    # A bare IPv6 address with a port cannot be split for sure.
    assert vmi("PreparingTarget", "Migration Target is listening at fd00::1:40113").target_address is None


def test_go_extra_artifact_rows_and_others() -> None:
    e = vmim(
        "SuccessfulDelete",
        "unschedulable pod timeout period exceeded%!(EXTRA string=virt-launcher-vm1-x2bcd)",
    )
    assert e.phase == "Failed" and e.target_pod == "virt-launcher-vm1-x2bcd" and e.vm_name == "vm1"
    assert e.failure_reason == "unschedulable pod timeout period exceeded"
    # An artifact on a message that has no row of its own is removed before a second try.
    e = vmi("Migrating", "VirtualMachineInstance is migrating.%!(EXTRA string=node01)", host="node01")
    assert e.phase == "Running" and e.source_node == "node01"


def test_combined_from_similar_events_prefix() -> None:
    e = vmi(
        "PreparingTarget",
        "(combined from similar events): VirtualMachineInstance Migration Target Prepared.",
        host="node02",
    )
    assert e.phase == "PreparingTarget" and e.target_node == "node02"
    assert e.message.startswith("(combined")  # the message itself is kept as received


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("VirtualMachineInstance migration uid 1a2b failed. reason:Live migration failed", "Live migration failed"),
        ("VirtualMachineInstance migration uid 1a2b failed. reason: Live migration failed", "Live migration failed"),
        ("VirtualMachineInstance migration uid 1a2b failed. reason:Live migration aborted ", "Live migration aborted"),
        (
            "VirtualMachineInstance migration uid 1a2b failed. reason:error encountered during MigrateToURI3 "
            "libvirt api call: virError(Code=1, Domain=10, Message='internal error: qemu unexpectedly closed')",
            "error encountered during MigrateToURI3 libvirt api call: virError(Code=1, Domain=10, "
            "Message='internal error: qemu unexpectedly closed')",
        ),
    ],
)
def test_failure_reason_with_and_without_space(message: str, reason: str) -> None:
    e = vmi("Migrated", message, event_type="Warning", host="node01")
    assert e.failure_reason == reason
    assert e.migration_uid == "1a2b" and e.phase == "Failed" and e.source_node == "node01"


def test_controller_failure_on_the_vmi_says_target_pod_is_down() -> None:
    e = vmi(
        "FailedMigration",
        "VirtualMachineInstance migration uid 1a2b failed. reason: Target pod is down",
        event_type="Warning",
    )
    assert e.failure_reason == "Target pod is down" and e.source_node is None


def test_eviction_strategy_warning_is_not_a_migration() -> None:
    e = vmi(
        "Migrated",
        "EvictionStrategy is set but vmi is not migratable; cannot migrate VMI: PVC rootdisk is "
        "not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)",
        event_type="Warning",
        host="node01",
    )
    assert not e.is_migration and e.phase is None and e.source_node is None
    assert e.vm_name == "fedora-vm"


@pytest.mark.parametrize("cut", [0, 1, 10, 38, 39, 40, 44, 49, 50, 51])
def test_messages_cut_off_at_any_length(cut: int) -> None:
    full = "The VirtualMachineInstance migrated to node node02.lab."
    e = vmi("Migrated", full[:cut], host="node01")  # no type: Normal and Warning rows compete
    # Until "to n" the text could still be "migrated to unknown host." (Failed): no phase.
    assert e.phase == ("Succeeded" if cut >= 40 else None)
    # A cut node name is never reported; "node02." looks whole (cut 51): a cut that falls on a
    # sentence's end cannot be told from the end.
    assert e.target_node == ("node02" if cut == 51 else None)
    assert e.truncated == (e.phase is not None and cut != 51)


@pytest.mark.parametrize("cut", range(1, 56))
def test_the_event_type_narrows_what_a_cut_message_can_be(cut: int) -> None:
    full = "The VirtualMachineInstance migrated to node node02.lab."
    assert vmi("Migrated", full[:cut], event_type="Normal").phase == "Succeeded"
    # Warning: only "The VirtualMachineInstance migrated to unknown host." starts this way, until "to n".
    assert vmi("Migrated", full[:cut], event_type="Warning").phase == (None if cut >= 40 else "Failed")


def test_cut_failure_message_keeps_what_was_read_before_the_cut() -> None:
    e = vmi("Migrated", "VirtualMachineInstance migration uid 1a2b failed. rea", event_type="Warning", host="n1")
    assert e.truncated and e.phase == "Failed" and e.migration_uid == "1a2b" and e.failure_reason is None


def test_unknown_reason_or_message_yields_what_is_known() -> None:
    e = vmi("SomethingNew", "KubeVirt v2 says hello", host="node01")
    assert (e.vm_name, e.phase, e.is_migration, e.source_node) == ("fedora-vm", None, False, None)
    e = vmim("SomethingNew", "hello", object_uid="u-1")
    assert (e.migration_name, e.migration_uid, e.phase, e.is_migration) == (
        "kubevirt-evacuation-h2x9k",
        "u-1",
        None,
        True,
    )


def test_sync_failed_only_with_a_migration_prefix() -> None:
    e = vmi("SyncFailed", "failed to handle migration proxy: dial unix /var/run/x.sock: connect: no such file")
    assert e.is_migration and e.phase is None
    assert not vmi("SyncFailed", "failed to sync guest time: timeout").is_migration


def test_error_text_in_the_reason_field() -> None:
    e = vmi(
        "failed to set memlock rlimit: operation not permitted",
        "Failed to update target node qemu memory limits during live migration",
        event_type="Warning",
        host="node02",
    )
    assert e.is_migration and e.target_node == "node02"


def test_empty_strings_are_unknown() -> None:
    e = parse_event(
        reason="Migrating",
        message="VirtualMachineInstance is migrating.",
        object_kind="",
        object_name="",
        namespace="",
        host="",
        component="",
        object_uid="",
        event_type="",
    )
    assert (e.object_kind, e.vm_name, e.namespace, e.source_node, e.component) == (None,) * 5
    assert e.phase == "Running"


def test_timestamps() -> None:
    aware = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert vmi("X", "y", timestamp=aware).timestamp == aware
    assert vmi("X", "y", timestamp="2026-11-20T09:00:00Z").timestamp == aware
    assert vmi("X", "y", timestamp="2026-11-20T10:00:00.123456789+01:00").timestamp == aware.replace(microsecond=123456)
    assert vmi("X", "y", timestamp="yesterday").timestamp is None
    assert vmi("X", "y", timestamp="2026-11-20T09:00:00").timestamp is None  # no offset: not RFC 3339


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", None),
        ("message", b"bytes"),
        ("namespace", 3),
        ("host", ["node01"]),
        ("count", "3"),
        ("count", True),
        ("timestamp", 1700000000),
        ("timestamp", datetime(2026, 1, 1)),
    ],
)
def test_wrong_types_raise_type_error_naming_the_field(field: str, value: Any) -> None:
    fields: dict[str, Any] = {"reason": "Migrating", "message": "VirtualMachineInstance is migrating."}
    fields[field] = value
    with pytest.raises(TypeError, match=field):
        parse_event(**fields)


def test_parse_event_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        parse_event("Migrating", "VirtualMachineInstance is migrating.")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("message", "component", "is_migration"),
    [
        # The VMI's own eviction budget (disruptionbudget-controller, generateName
        # kubevirt-disruption-budget-): made at VM start, removed at VM stop. Not a migration.
        ("Created PodDisruptionBudget kubevirt-disruption-budget-5ml4d", "disruptionbudget-controller", False),
        ("Created PodDisruptionBudget kubevirt-disruption-budget-5ml4d", None, False),
        ("Deleted PodDisruptionBudget kubevirt-disruption-budget-5ml4d", "disruptionbudget-controller", False),
        ("Error creating a PodDisruptionBudget: forbidden", "disruptionbudget-controller", False),
        # v0.42-v0.45: the per-migration budget, same text from the VMI controller.
        (
            "Created PodDisruptionBudget kubevirt-migration-pdb-kubevirt-migrate-vm-x7k2p",
            "virtualmachine-controller",
            True,
        ),
        ("Created PodDisruptionBudget kubevirt-migration-pdb-kubevirt-migrate-vm-x7k2p", None, True),
        # A migration-pdb name from the wrong component is not read as one either.
        ("Created PodDisruptionBudget kubevirt-migration-pdb-x", "disruptionbudget-controller", False),
        # After the migration: about it, but moves no phase.
        ("shrank PodDisruptionBudget kubevirt-disruption-budget-5ml4d", "disruptionbudget-controller", True),
    ],
)
def test_the_vms_own_disruption_budget_is_not_a_migration(
    message: str, component: str | None, is_migration: bool
) -> None:
    reason = message.split(" ", 1)[0].replace("Created", "SuccessfulCreate").replace("Deleted", "SuccessfulDelete")
    reason = {"Error": "FailedCreate", "shrank": "SuccessfulUpdate"}.get(reason, reason)
    e = vmi(reason, message, event_type="Warning" if reason.startswith("Failed") else "Normal", component=component)
    assert e.is_migration is is_migration
    assert e.phase is None
    assert e.vm_name == "fedora-vm"
