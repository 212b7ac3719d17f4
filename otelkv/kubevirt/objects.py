"""Read a VirtualMachineInstanceMigration object (``kubevirt.io/v1``) into the facts it states.

The object is KubeVirt's own record of a migration, so its facts are not inferred: ``spec.vmiName``,
``status.phase``, ``status.phaseTransitionTimestamps`` (KubeVirt >= 1.0) and
``status.migrationState`` (``sourceNode``, ``targetNode``, ``targetPod``, ``startTimestamp``,
``endTimestamp``, ``completed``, ``failed``, ``abortStatus``, ``mode``, ``failureReason``; filled
while the migration runs in recent releases, copied from the VMI once it is final in older ones).

Who started it: ``metadata.annotations`` (``kubevirt.io/evacuationMigration: <node>``,
``kubevirt.io/workloadUpdateMigration``), else the name's generateName prefix
(:mod:`.trigger`). The node an evacuation drains is the migration's source node: a source-node
fact when ``migrationState`` does not state one (KubeVirt before v0.59 has none).

Times: the migration starts at its ``Pending`` transition (else the object's creation) and ends at
its ``Succeeded``/``Failed`` transition (else ``migrationState.endTimestamp``). A field of an
unexpected type is read as unknown: the object came from the API server, and a reader that
refuses it would lose the rest of its facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .model import PHASES, TERMINAL_PHASES, VMIM, MigrationEvent
from .names import bounded_reason, kubernetes_name
from .timestamps import parse_time
from .trigger import EVACUATION, EVACUATION_ANNOTATION, trigger_of_annotations


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationObject:
    """The facts of one VirtualMachineInstanceMigration object; ``None`` where it is silent."""

    namespace: str | None
    name: str | None
    uid: str | None
    resource_version: str | None = None
    vm_name: str | None = None
    phase: str | None = None
    source_node: str | None = None
    target_node: str | None = None
    target_pod: str | None = None
    failure_reason: str | None = None
    mode: str | None = None
    abort_status: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    #: The latest time the object states (a phase transition, or the migration's start or end).
    latest: datetime | None = None
    #: Who started it (:mod:`.trigger`): its annotations, else its name's prefix.
    trigger: str | None = None
    #: The node an evacuation drains (its ``kubevirt.io/evacuationMigration`` annotation).
    evacuated_node: str | None = None
    #: The cluster the record came from (resource attribute ``k8s.cluster.name``), given by the caller.
    cluster: str | None = None

    def as_event(self) -> MigrationEvent:
        """The object's facts as the tracker learns an event's."""
        return MigrationEvent(
            reason="",
            message="",
            object_kind=VMIM,
            object_name=self.name,
            object_uid=self.uid,
            namespace=self.namespace,
            timestamp=self.latest,
            cluster=self.cluster,
            vm_name=self.vm_name,
            migration_name=self.name,
            migration_uid=self.uid,
            phase=self.phase,
            source_node=self.source_node,
            target_node=self.target_node,
            target_pod=self.target_pod,
            failure_reason=self.failure_reason,
            is_migration=True,
        )

    @property
    def terminal(self) -> bool:
        """Whether KubeVirt says the migration is over."""
        return self.phase in TERMINAL_PHASES

    @property
    def duration_seconds(self) -> float | None:
        """KubeVirt's own start-to-end time, when it states both."""
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())


def is_migration_object(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is a VirtualMachineInstanceMigration of the ``kubevirt.io`` group."""
    api = obj.get("apiVersion")
    return obj.get("kind") == VMIM and isinstance(api, str) and api.startswith("kubevirt.io/")


def read_migration_object(obj: Mapping[str, Any], *, cluster: str | None = None) -> MigrationObject:
    """The facts of a VirtualMachineInstanceMigration given as a mapping (its JSON); ``cluster``:
    the cluster it came from, when the caller knows it."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"obj must be a mapping, got {type(obj).__name__}")
    meta, spec, status = _map(obj, "metadata"), _map(obj, "spec"), _map(obj, "status")
    state = _map(status, "migrationState")
    name = kubernetes_name(_str(meta, "name"))
    annotations = _map(meta, "annotations")
    trigger = trigger_of_annotations(annotations, name)
    evacuated = kubernetes_name(_str(annotations, EVACUATION_ANNOTATION)) if trigger == EVACUATION else None
    transitions: dict[str, datetime] = {}
    items = status.get("phaseTransitionTimestamps")
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping):
            phase, when = _str(item, "phase"), _time(item, "phaseTransitionTimestamp")
            if phase in PHASES and when is not None:
                transitions[phase] = min(when, transitions.get(phase, when))
    phase = _str(status, "phase")
    phase = phase if phase in PHASES else None
    started = transitions.get("Pending") or _time(meta, "creationTimestamp")
    ended = None
    if phase in TERMINAL_PHASES:
        ended = transitions.get(phase) or _time(state, "endTimestamp")
    stamps = [*transitions.values(), _time(state, "startTimestamp"), _time(state, "endTimestamp"), started]
    known = [t for t in stamps if t is not None]
    failure = _str(state, "failureReason")
    return MigrationObject(
        namespace=kubernetes_name(_str(meta, "namespace")),
        name=name,
        uid=kubernetes_name(_str(meta, "uid")),
        resource_version=kubernetes_name(_str(meta, "resourceVersion")),
        vm_name=kubernetes_name(_str(spec, "vmiName")),
        phase=phase,
        source_node=kubernetes_name(_str(state, "sourceNode")) or evacuated,
        target_node=kubernetes_name(_str(state, "targetNode")),
        target_pod=kubernetes_name(_str(state, "targetPod")),
        failure_reason=bounded_reason(failure) if phase == "Failed" or state.get("failed") is True else None,
        mode=kubernetes_name(_str(state, "mode")),
        abort_status=kubernetes_name(_str(state, "abortStatus")),
        started=started,
        ended=ended,
        latest=max(known, default=None),
        trigger=trigger,
        evacuated_node=evacuated,
        cluster=kubernetes_name(cluster or None),
    )


def _map(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _time(obj: Mapping[str, Any], key: str) -> datetime | None:
    value = _str(obj, key)
    return parse_time(value) if value else None
