"""The facts otelkv reads from one KubeVirt event, as a frozen record; KubeVirt's phase names.

Plain dataclasses. Building them fast (slot by slot) is :mod:`.event_builders`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

VMI: Final = "VirtualMachineInstance"
VMIM: Final = "VirtualMachineInstanceMigration"
VM: Final = "VirtualMachine"

#: KubeVirt's VirtualMachineInstanceMigration phase names (``MigrationPhase`` in kubevirt.io/api),
#: in the order a migration normally walks them. ``WaitingForSync`` and ``Synchronizing`` exist
#: since v1.6.0 (decentralized migrations). The unset phase ``""`` is not a value otelkv reports.
PHASES: Final[tuple[str, ...]] = (
    "Pending",
    "Scheduling",
    "Scheduled",
    "PreparingTarget",
    "TargetReady",
    "Running",
    "WaitingForSync",
    "Synchronizing",
    "Succeeded",
    "Failed",
)
TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationEvent:
    """One Kubernetes Event about a KubeVirt object, with the migration facts it states.

    The first group of fields is the event as received (empty strings normalised to ``None``).
    The second group holds facts; each is ``None`` when the event does not state it — never a
    guess. :class:`~otelkv.kubevirt.MigrationTracker` may fill facts that earlier events of the
    same migration stated, and ``duration_seconds`` on a terminal event.
    """

    # The event as received.
    reason: str
    message: str
    event_type: str | None = None
    object_kind: str | None = None
    object_name: str | None = None
    object_uid: str | None = None
    namespace: str | None = None
    component: str | None = None
    host: str | None = None
    timestamp: datetime | None = None
    count: int | None = None
    #: The cluster it came from: the resource attribute ``k8s.cluster.name``, when the collector sets it.
    cluster: str | None = None

    # Facts.
    vm_name: str | None = None
    migration_name: str | None = None
    migration_uid: str | None = None
    phase: str | None = None
    source_node: str | None = None
    target_node: str | None = None
    target_pod: str | None = None
    target_address: str | None = None
    target_ports: tuple[int, ...] | None = None
    failure_reason: str | None = None
    is_migration: bool = False
    duration_seconds: float | None = None
    #: Who started the migration (:mod:`otelkv.kubevirt.trigger`), and where that was read
    #: (``object`` or ``name``): filled by the tracker.
    trigger: str | None = None
    trigger_source: str | None = None

    # How the facts were read: the KubeVirt format string that matched (``None`` if none did),
    # and whether the message looked cut off (then the cut argument is left out).
    template: str | None = None
    truncated: bool = False
