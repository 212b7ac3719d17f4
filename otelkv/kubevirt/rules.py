"""The decision table: every KubeVirt migration event otelkv reads, and what it means.

This is the ONE table. ``docs/parsing.md`` is generated from it (``python -m
otelkv.kubevirt.doc``) and the tests check it row by row against KubeVirt's own catalogue
(``../shared/kubevirt/events.yaml``, vendored as ``tests/data/kubevirt-events.yaml``).

Columns:

- ``reason``, ``kind``, ``type``, ``format``: the Kubernetes Event as KubeVirt records it, the
  format string verbatim from KubeVirt's source (``reason=None``: KubeVirt puts error text in the
  reason, so only the message identifies the event).
- ``args``: the role of each ``%s``/``%v``/``%d`` (see :mod:`otelkv.kubevirt.template`).
- ``phase``: the VMIM phase right after the event (the catalogue's ``phase_after`` column);
  ``"-"`` is "about a migration, moves no phase".
- ``host``: what the event's ``source.host`` (reportingInstance) is: ``source`` node, ``target``
  node, or ``migrated`` — the Normal ``Migrated`` event, whose host was the source up to KubeVirt
  v1.5 and is the target since v1.6, told apart by comparing with the node in its text.
- ``attempt``: False for rows that are about migration but not about one migration attempt
  (a non-migratable VMI warning, or text shared with the VMI lifecycle); they never join one.
- ``failure``: the failure reason the row states — :data:`FROM_MESSAGE` (the whole message
  says why), a constant, or None (a ``failure_reason`` argument, if any, says it).
- ``component``: the emitter (``source.component``) the row is about, for a text that another
  component records with another meaning; an event from another known component never matches.
- ``name_prefix``: the ``name`` argument must start with it. KubeVirt's per-VMI eviction budget
  (``kubevirt-disruption-budget-…``, made at VM start) and the per-migration one of v0.42 to v0.45
  (``kubevirt-migration-pdb-…``) share the text ``Created PodDisruptionBudget %s``; only the
  second is about a migration, and the name tells them apart when the component is not known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Final

from .model import PHASES, VMI, VMIM
from .template import Token, tokenize

FROM_MESSAGE: Final = "<message>"
NO_PHASE: Final = "-"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the decision table (see the module docstring for the columns)."""

    reason: str | None
    kind: str
    type: str
    format: str
    args: tuple[str, ...]
    phase: str
    host: str | None = None
    attempt: bool = True
    failure: str | None = None
    since: str = "v0.10.0"
    until: str | None = None
    note: str = ""
    component: str | None = None
    name_prefix: str | None = None
    tokens: tuple[Token, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.phase != NO_PHASE and self.phase not in PHASES:
            raise ValueError(f"{self.format!r}: phase {self.phase!r} is not a VMIM phase")
        if self.host not in (None, "source", "target", "migrated"):
            raise ValueError(f"{self.format!r}: host {self.host!r}")
        if self.name_prefix is not None and "name" not in self.args:
            raise ValueError(f"{self.format!r}: name_prefix needs a 'name' argument")
        object.__setattr__(self, "tokens", tokenize(self.format, self.args))


def _row(
    kind: str,
    reason: str | None,
    type_: str,
    fmt: str,
    *args: str,
    phase: str,
    host: str | None = None,
    attempt: bool = True,
    failure: str | None = None,
    since: str = "v0.10.0",
    until: str | None = None,
    note: str = "",
    component: str | None = None,
    name_prefix: str | None = None,
) -> Rule:
    return Rule(
        reason, kind, type_, fmt, args, phase, host, attempt, failure, since, until, note, component, name_prefix
    )


_vmim = partial(_row, VMIM)
_vmi = partial(_row, VMI)
W, N, M = "Warning", "Normal", FROM_MESSAGE
_FAILED = "FailedMigration"
_UID_FAILED = "VirtualMachineInstance migration uid %s failed. reason:"

#: Order matters only between rows whose texts overlap: the first complete match wins.
# fmt: off
RULES: Final[tuple[Rule, ...]] = (
    # --- virt-controller, migration controller, on the VirtualMachineInstanceMigration -------
    _vmim("SuccessfulCreate", N, "Created migration target pod %s", "target_pod", phase="Scheduling"),
    _vmim("SuccessfulCreate", N, "Created attachment pod %s", "name", phase="Scheduling", since="v0.44.0"),
    _vmim("SuccessfulHandOver", N, "Migration target pod is ready for preparation by virt-handler.",
          phase="PreparingTarget"),
    _vmim("FailedHandOver", W, "Failed to set MigrationStat in VMI status. :%v", "error", phase="Scheduled"),
    _vmim("FailedHandOver", W, "failed to set migration SourceState in VMI status. :%v", "error",
          phase="Scheduled", since="v1.6.0"),
    _vmim("SuccessfulMigration", N, "Source node reported migration succeeded", phase="Succeeded"),
    _vmim(_FAILED, W, "Migration failed because vmi does not exist.", phase="Failed", failure=M),
    _vmim(_FAILED, W, "Migration failed vmi shutdown during migration.", phase="Failed", failure=M),
    _vmim(_FAILED, W, "Migration failed due to being canceled", phase="Failed", failure=M, since="v0.56.0"),
    _vmim(_FAILED, W, "Migration failed because target pod shutdown during migration", phase="Failed",
          failure=M),
    _vmim(_FAILED, W, "Migration target pod was removed during active migration.", phase="Failed", failure=M),
    _vmim(_FAILED, W, "VMI's migration state was cleared during the active migration.", phase="Failed",
          failure=M),
    _vmim(_FAILED, W, "VMI's migration state was taken over by another migration job during active migration.",
          phase="Failed", failure=M),
    _vmim(_FAILED, W, "Migration failed because target attachment pod shutdown during migration",
          phase="Failed", failure=M, since="v0.44.0"),
    _vmim(_FAILED, W, "VMI is not eligible for migration because another migration job is in progress.",
          phase="Failed", failure=M),
    _vmim(_FAILED, W, "source node reported migration failed", phase="Failed", since="v0.56.0",
          note="the reason is in the VMI's Warning Migrated event"),
    _vmim(_FAILED, W, "Source node reported migration failed", phase="Failed", until="v0.55.x"),
    _vmim(_FAILED, W, "Migration timeout waiting for utility volumes to detach from VMI [%s/%s]. "
          "Utility volumes still present after %d seconds.", "vm_namespace", "vm_name", "seconds",
          phase="Failed", failure=M, since="v1.8.0"),
    _vmim("UtilityVolumeMigrationPending", W, "Migration waiting for utility volumes to detach from VMI "
          "[%s/%s]. Will timeout in %d seconds.", "vm_namespace", "vm_name", "seconds", phase="Pending",
          since="v1.8.0"),
    _vmim("migrationTargetPodUnschedulable", W, "Migration target pod for VMI [%s/%s] is currently "
          "unschedulable.", "vm_namespace", "vm_name", phase="Scheduling", since="v0.49.0"),
    _vmim("SuccessfulDelete", N, "unschedulable pod %s/%s timeout period exceeded", "pod_namespace",
          "target_pod", phase="Failed", failure=M, since="v1.3.0"),
    _vmim("SuccessfulDelete", N, "unschedulable pod timeout period exceeded%!(EXTRA string=%s)",
          "target_pod", phase="Failed", failure=M, since="v0.48.0", until="v1.2.x",
          note="Go fmt artifact"),
    _vmim("SuccessfulDelete", N, "pending pod %s/%s timeout period exceeded", "pod_namespace", "target_pod",
          phase="Failed", failure=M, since="v1.3.0"),
    _vmim("SuccessfulDelete", N, "pending pod timeout period exceeded%!(EXTRA string=%s)", "target_pod",
          phase="Failed", failure=M, since="v0.48.0", until="v1.2.x", note="Go fmt artifact"),
    _vmim("FailedDelete", W, "Error deleted migration target pod: %v", "error", phase=NO_PHASE,
          since="v0.48.0"),
    _vmim("SuccessfulDelete", N, "migration canceled and pod %s/%s is deleted", "pod_namespace", "target_pod",
          phase="Failed", failure=M, since="v1.3.0"),
    _vmim("SuccessfulDelete", N, "migration canceled%!(EXTRA string=%s)", "target_pod", phase="Failed",
          failure=M, since="v0.56.0", until="v1.2.x", note="Go fmt artifact"),
    _vmim("FailedDelete", W, "Error deleting canceled migration target pod: %v", "error", phase=NO_PHASE,
          since="v0.56.0"),
    _vmim("SuccessfulDelete", N, "Deleted canceled target pod %s for migration %s", "target_pod",
          "migration_name", phase="Failed", failure=M, since="v1.7.0"),
    _vmim("SuccessfulAbortMigration", N, "Migration is ready to be canceled by virt-handler.", phase=NO_PHASE,
          since="v0.16.0"),
    _vmim("FailedAbortMigration", W, "failed to set MigrationState in VMI status. :%v", "error",
          phase=NO_PHASE, since="v0.16.0"),
    _vmim("BackupAbortFailed", W, "Failed to abort backup %s for critical migration: %v", "name", "error",
          phase=NO_PHASE, since="v1.8.0"),
    _vmim("BackupAbortedForMigration", N, "Aborting backup %s for system-critical migration", "name",
          phase=NO_PHASE, since="v1.8.0"),
    _vmim("NoSuitableNodesForHostModelMigration", W, "Migration cannot proceed since no node is suitable to "
          "run the required CPU model / required features.", phase="Scheduling", since="v0.48.0",
          until="v0.48.x", note="sent in phase Scheduling while the target pod is pending"),
    # --- virt-controller, on the VirtualMachineInstance ----------------------------------------
    _vmi(_FAILED, W, "VirtualMachineInstance migration uid %s failed. reason: Target pod is down",
         "migration_uid", phase="Failed", failure="Target pod is down", since="v1.3.0"),
    _vmi(_FAILED, W, "VirtualMachineInstance migration uid %s failed. reason: target pod is down",
         "migration_uid", phase="Failed", failure="target pod is down", since="v0.41.0", until="v1.2.x"),
    _vmi(_FAILED, W, "VirtualMachineInstance migration uid %s failed. reason: %s", "migration_uid",
         "failure_reason", phase="Failed", since="v1.3.0", until="v1.8.x"),
    _vmi("FailedCreate", W, "failed to render launch manifest: failed to create target pod for vmi %s/%s, "
         "%v", "vm_namespace", "vm_name", "error", phase=NO_PHASE, since="v1.0.0",
         note="the catalogue's migration variant, told apart from the lifecycle one by its argument"),
    _vmi("FailedCreate", W, "Error creating pod: %v", "error", phase=NO_PHASE, attempt=False,
         note="same text from the VMI lifecycle controller"),
    _vmi("FailedCreate", W, "failed to render launch manifest: %v", "error", phase=NO_PHASE, attempt=False,
         since="v1.0.0", note="same text from the VMI lifecycle controller"),
    _vmi("FailedCreate", W, "Error creating attachment pod: %v", "error", phase=NO_PHASE, attempt=False,
         since="v0.44.0", note="same text from the VMI hotplug controller"),
    _vmi("MigrationBackoff", W, "backoff migrating vmi %s/%s", "vm_namespace", "vm_name", phase="Pending",
         since="v0.59.0"),
    _vmi("NoSuitableNodesForHostModelMigration", W, "Migration cannot proceed since no node is suitable to "
         "run the required CPU model / required features: %v", "error", phase="Scheduling", since="v0.49.0",
         note="handlePendingPodTimeout: the target pod exists, so the migration is (or turns) Scheduling"),
    _vmi("SuccessfulUpdate", N, "Expanded PodDisruptionBudget %s", "name", phase=NO_PHASE, since="v0.46.0",
         until="v1.5.x"),
    _vmi("FailedUpdate", W, "Error expanding the PodDisruptionBudget %s: %v", "name", "error", phase=NO_PHASE,
         since="v0.46.0", until="v1.5.x"),
    _vmi("SuccessfulCreate", N, "Created PodDisruptionBudget %s", "name", phase=NO_PHASE, since="v0.42.0",
         until="v0.45.x", component="virtualmachine-controller", name_prefix="kubevirt-migration-pdb-",
         note="the per-migration budget; the same text from disruptionbudget-controller is the VM's own"),
    _vmi("SuccessfulCreate", N, "Created Migration %s for automated workload update", "migration_name",
         phase="Pending", since="v0.39.0"),
    _vmi("SuccessfulCreate", N, "Created Migration %s", "migration_name", phase="Pending", since="v0.16.0"),
    _vmi("FailedCreate", W, "Error creating a Migration: %v", "error", phase=NO_PHASE, since="v0.16.0"),
    _vmi("FailedCreate", N, "VirtualMachineInstance is not migrateable", phase=NO_PHASE, attempt=False,
         since="v0.16.0", until="v1.8.x", note="a drained node hosts a non-migratable VMI"),
    _vmi("FailedCreate", W, "Error creating a Migration for automated workload update: %v", "error",
         phase=NO_PHASE, since="v0.39.0"),
    _vmi("SuccessfulChangeAbortion", N, "Aborted change for vmi: %s", "vm_name", phase=NO_PHASE,
         since="v1.3.0"),
    _vmi("FailedChangeAbortion", N, "Failed to abort change for vmi: %s: %v", "vm_name", "error",
         phase=NO_PHASE, since="v1.3.0"),
    _vmi("SuccessfulUpdate", N, "shrank PodDisruptionBudget %s", "name", phase=NO_PHASE, since="v0.51.0",
         until="v1.5.x"),
    _vmi("SuccessfulUpdate", N, "shrank PodDisruptionBudget%!(EXTRA string=%s)", "name", phase=NO_PHASE,
         since="v0.46.0", until="v0.50.x", note="Go fmt artifact"),
    _vmi("FailedUpdate", W, "Error updating the PodDisruptionBudget %s: %v", "name", "error", phase=NO_PHASE,
         since="v0.46.0", until="v1.5.x"),
    # --- virt-handler, on the VirtualMachineInstance -------------------------------------------
    _vmi("Migrating", N, "VirtualMachineInstance is migrating.", phase="Running", host="source"),
    _vmi("Migrating", N, "VirtualMachineInstance is aborting migration.", phase="Running", host="source",
         since="v0.16.0"),
    _vmi("Migrated", W, _UID_FAILED + "%s", "migration_uid", "failure_reason", phase="Failed", host="source",
         note="no space after 'reason:'"),
    _vmi("Migrated", W, "The VirtualMachineInstance migrated to unknown host.", phase="Failed", host="source",
         failure=M),
    _vmi("Migrated", W, "The VirtualMachineInstance's domain was never observed on the target after the "
         "migration completed within the timeout period.", phase="Failed", host="source", failure=M),
    _vmi("Migrated", W, "The VirtualMachineInstance's decentralized migration failed due to the source VMI "
         "being failed.", phase="Failed", host="source", failure=M, since="v1.7.0"),
    _vmi("Migrated", W, "EvictionStrategy is set but vmi is not migratable; %s", "error", phase=NO_PHASE,
         attempt=False, since="v0.54.0", note="a warning, not a migration"),
    _vmi("Migrated", W, "EvictionStrategy is set but vmi is not migratable", phase=NO_PHASE, attempt=False,
         since="v0.41.0", until="v0.53.x", note="a warning, not a migration"),
    _vmi("SyncFailed", W, "failed to handle migration proxy: %v", "error", phase=NO_PHASE),
    _vmi("SyncFailed", W, "syncing migration target failed: %v", "error", phase=NO_PHASE, host="target"),
    _vmi("SyncFailed", W, "failed to configure vmi network for migration target: %v", "error",
         phase=NO_PHASE, host="target"),
    _vmi("SyncFailed", W, "failed to adjust resources on migration target: %v", "error", phase=NO_PHASE,
         host="target"),
    _vmi("SyncFailed", W, "failed to handle post sync migration proxy: %v", "error", phase=NO_PHASE),
    _vmi("SyncFailed", W, "%s", "error", phase=NO_PHASE, attempt=False,
         note="any sync error; only the prefixes above are about a migration"),
    _vmi("PreparingTarget", N, "Migration Target is listening at %s, on ports: %s", "target_address",
         "target_ports", phase="TargetReady", host="target", since="v0.15.0"),
    _vmi("PreparingTarget", N, "Migration Target is listening at %s", "target_endpoint", phase="TargetReady",
         host="target", until="v0.14.x"),
    _vmi("PreparingTarget", N, "VirtualMachineInstance Migration Target Prepared.", phase="PreparingTarget",
         host="target"),
    _vmi("Migrated", N, "The VirtualMachineInstance migrated to node %s.", "target_node", phase="Succeeded",
         host="migrated", note="host: source up to v1.5, target since v1.6"),
    _vmi("Migrated", W, "VirtualMachineInstance is aborting migration.", phase="Running", host="target",
         since="v1.9.0"),
    _vmi(None, W, "Failed to update target node qemu memory limits during live migration", phase=NO_PHASE,
         host="target", since="v1.0.0"),
    _vmi(None, W, "failed to change vCPUs", phase=NO_PHASE, host="target", since="v1.0.0"),
    _vmi(None, W, "failed to update guest memory", phase=NO_PHASE, host="target", since="v1.1.0"),
    _vmi("ContainerDiskFailedChecksum", N, "Aborting migration as the source and target "
         "containerdisks/kernelboot do not match", phase="Failed", host="target", failure=M, since="v1.2.0",
         until="v1.5.x"),
)
# fmt: on
