"""The decision table against KubeVirt's event catalogue, entry by entry and variant by variant.

Every format string of ``events.yaml`` (and each older variant in its ``history``) is rendered
with sample arguments the way KubeVirt's ``Sprintf`` would, then parsed; the facts must be the
ones the catalogue's columns and the parsing rules promise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from otelkv.kubevirt import PHASES, RULES, parse_event
from otelkv.kubevirt.template import tokenize
from tests.conftest import load_catalogue

NS, VM, VMI_UID = "virtualmachines", "fedora-vm.web-01", "6f1c2d3e-0000-4000-8000-00000000aa01"
MIG, MIG_UID = "kubevirt-migrate-vm-x7k2p", "9a8b7c6d-1111-4222-8333-444455556666"
POD = f"virt-launcher-{VM}-9xbzq"
SRC, TGT = "node01.lab.example.com", "node02.lab.example.com"
FAILURE = "Live migration failed error encountered during MigrateToURI3 libvirt api call: timed out"

# Rows that are about migration in the catalogue but not about one migration attempt.
NOT_AN_ATTEMPT = {
    "EvictionStrategy is set but vmi is not migratable; %s",
    "EvictionStrategy is set but vmi is not migratable",
    "VirtualMachineInstance is not migrateable",
    "Error creating pod: %v",  # same text from the VMI lifecycle controller
    "Error creating attachment pod: %v",  # same text from the hotplug controller
}
# Failure events that do not say why: the reason is in the VMI's Warning Migrated event.
SAYS_NO_WHY = {"source node reported migration failed", "Source node reported migration failed"}
# Rows otelkv adds to the catalogue's: more specific readings of a catalogue entry's text.
ADDED_ROWS = {
    "failed to render launch manifest: failed to create target pod for vmi %s/%s, %v",
    "failed to handle migration proxy: %v",
    "syncing migration target failed: %v",
    "failed to configure vmi network for migration target: %v",
    "failed to adjust resources on migration target: %v",
    "failed to handle post sync migration proxy: %v",
}


def sample(arg: str) -> str:
    """A realistic value for a catalogue argument, chosen by its description."""
    head = arg.split(" ", maxsplit=1)[0].split("(", maxsplit=1)[0]
    if "kubevirt-migration-pdb-" in arg:
        return f"kubevirt-migration-pdb-{MIG}"
    if "failed to create target pod" in arg:
        return f"failed to create target pod for vmi {NS}/{VM}, it needs a privileged namespace to run: denied"
    by_head = {
        "target_pod_name": POD,
        "pod_name": POD,
        "attachment_pod_name": "hp-volume-k8p2x",
        "vmi_namespace": NS,
        "pod_namespace": NS,
        "namespace": NS,
        "vmi_name": VM,
        "vmi_uid": VMI_UID,
        "seconds_waited": "300",
        "seconds_left": "240",
        "migration_name": MIG,
        "backup_name": "nightly-backup",
        "migration_uid": MIG_UID,
        "Go": "map[cpu-model-migration.node.kubevirt.io/Skylake:true]",
        "pdb_name": "kubevirt-disruption-budget-4tq8z",
        "err": "<nil>",
        "failure_reason": FAILURE,
        "target": "10.244.1.17",
        "comma-separated": "40113,34211",
        "ip:port": "10.244.1.17:40113",
        "target_node_name": TGT,
        "error": "failed to handle migration proxy: dial unix: connection refused",
        "LiveMigratable": "cannot migrate VMI: PVC rootdisk is not shared",
        "node_name": SRC,
        "constant": "Target pod is down",
    }
    return by_head.get(head, "sample-value")


@dataclass(frozen=True)
class Case:
    """One catalogue entry or variant, rendered."""

    id: str
    entry: dict[str, Any]
    kind: str
    format: str
    args: list[str]
    message: str
    host: str | None


def _host(entry: dict[str, Any], emitter: str | None) -> str | None:
    if entry["component"] != "virt-handler":
        return None
    return TGT if emitter == "target" else SRC


def cases() -> Iterator[Case]:
    for i, entry in enumerate(load_catalogue()["events"]):
        variants = [(entry["message_format"], entry["args"], "", entry["object_kind"])]
        variants += [
            (
                h["message_format"],
                h.get("args", entry["args"]),
                f"@{h['since_version']}",
                h.get("object_kind", entry["object_kind"]),
            )
            for h in entry.get("history", [])
            if "message_format" in h
        ]
        for fmt, all_args, tag, kind in variants:
            verbs = len(re.findall(r"%[svd]", fmt))
            args = all_args[:verbs]
            if verbs > len(args):  # v1.3-v1.8 "reason: %s": the argument was always this text
                args = [*args, "constant (Target pod is down)"]
            values = iter(sample(a) for a in args)
            message = "".join(t if isinstance(t, str) else next(values) for t in tokenize(fmt, ["error"] * len(args)))
            case_id = f"{i:03d}-{entry['reason']}{tag}"
            emitters = [h["emitter_node"] for h in entry.get("emitter_history", [])] or [entry.get("emitter_node")]
            for emitter in emitters:
                yield Case(
                    f"{case_id}-{emitter}" if len(emitters) > 1 else case_id,
                    entry,
                    kind,
                    fmt,
                    args,
                    message,
                    _host(entry, emitter),
                )


CASES = list(cases())


def test_catalogue_is_the_expected_one(catalogue: dict[str, Any]) -> None:
    assert catalogue["meta"]["repository"] == "kubevirt/kubevirt"
    assert len(CASES) >= len(catalogue["events"]) > 100


def test_every_migration_entry_has_one_row_with_its_phase(catalogue: dict[str, Any]) -> None:
    rows = {(r.reason, r.kind, r.format): r for r in RULES}
    for entry in catalogue["events"]:
        if not entry.get("migration_related"):
            continue
        reason = None if entry["reason"].startswith("<") else entry["reason"]
        formats = [entry["message_format"]] + [
            h["message_format"] for h in entry.get("history", []) if "message_format" in h
        ]
        for fmt in formats:
            kind = next(
                (
                    h["object_kind"]
                    for h in entry.get("history", [])
                    if h.get("message_format") == fmt and "object_kind" in h
                ),
                entry["object_kind"],
            )
            row = rows.get((reason, kind, fmt))
            if row is None and fmt == "%s":
                continue  # SyncFailed: read by the prefix rows below, see ADDED_ROWS
            assert row is not None, f"no row for {entry['reason']} {fmt!r}"
            assert row.phase == entry["phase_after"], fmt
            assert row.type == entry["type"], fmt


def test_every_row_comes_from_the_catalogue_or_is_a_named_addition(catalogue: dict[str, Any]) -> None:
    known = set()
    for entry in catalogue["events"]:
        known.add(entry["message_format"])
        known.update(h["message_format"] for h in entry.get("history", []) if "message_format" in h)
    extra = {r.format for r in RULES} - known
    assert extra == ADDED_ROWS
    assert all(r.phase == "-" or r.phase in PHASES for r in RULES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rendered_entry_parses_to_what_the_table_promises(case: Case) -> None:
    entry = case.entry
    kind = case.kind
    reason = (
        "failed to set memlock limit: operation not permitted"
        if entry["reason"] == "<error text>"
        else (entry["reason"])
    )
    vmim = kind == "VirtualMachineInstanceMigration"
    event = parse_event(
        reason=reason,
        message=case.message,
        event_type=entry["type"],
        object_kind=kind,
        object_name=MIG if vmim else VM,
        object_uid=MIG_UID if vmim else VMI_UID,
        namespace=NS,
        component=entry["source_component"],
        host=case.host,
        timestamp="2026-11-20T09:00:00Z",
        count=1,
    )
    phase_after = entry.get("phase_after")
    related = bool(entry.get("migration_related")) and phase_after is not None
    assert event.phase == (phase_after if phase_after in PHASES else None)
    assert event.is_migration == (vmim or (related and case.format not in NOT_AN_ATTEMPT))
    assert not event.truncated

    heads = {a.split(" ")[0] for a in case.args}
    names_vm = bool(heads & {"vmi_name", "target_pod_name", "pod_name"})
    if kind in ("VirtualMachineInstance", "VirtualMachine"):
        assert event.vm_name == VM
    elif vmim:
        assert event.vm_name == (VM if names_vm else None)
    else:
        assert event.vm_name is None
    assert event.migration_name == (MIG if vmim or "migration_name" in heads else None)
    assert event.migration_uid == (MIG_UID if vmim or "migration_uid" in heads else None)
    if vmim and heads & {"target_pod_name", "pod_name"}:
        assert event.target_pod == POD

    if not event.is_migration:
        assert (event.source_node, event.target_node) == (None, None)
    elif case.format == "The VirtualMachineInstance migrated to node %s.":
        assert event.target_node == TGT
        assert event.source_node == (SRC if case.host == SRC else None)
    elif entry.get("emitter_node") == "source":
        assert (event.source_node, event.target_node) == (SRC, None)
    elif entry.get("emitter_node") == "target":
        assert (event.source_node, event.target_node) == (None, TGT)
    else:
        assert (event.source_node, event.target_node) == (None, None)

    if event.phase == "Failed":
        if case.format in SAYS_NO_WHY:
            assert event.failure_reason is None
        elif "reason:" in case.message:
            assert event.failure_reason == case.message.split("reason:", 1)[1].strip()
        else:
            assert event.failure_reason
    else:
        assert event.failure_reason is None
