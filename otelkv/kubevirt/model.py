"""The facts otelkv reads from one KubeVirt event, as a frozen record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, Final

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

    # How the facts were read: the KubeVirt format string that matched (``None`` if none did),
    # and whether the message looked cut off (then the cut argument is left out).
    template: str | None = None
    truncated: bool = False


# -- building events fast -------------------------------------------------------------------
# A frozen dataclass's __init__ sets each field with object.__setattr__: with 26 fields that is
# most of the cost of reading an event (about 3x a slot write). ``new_event`` and ``evolve`` build
# the same objects by writing the slots directly, one line a field, generated below from the
# dataclass's own fields (as dataclasses generates __init__). tests/test_kubevirt_model_fast.py
# checks them against the dataclass's __init__ and dataclasses.replace, and that no field has a
# default factory or a post-init step they would skip.
_FIELDS: Final = tuple(MigrationEvent.__dataclass_fields__)
_READ_ALL: Final = attrgetter(*_FIELDS)
_INDEX: Final = {name: i for i, name in enumerate(_FIELDS)}


def _generated() -> tuple[Callable[..., MigrationEvent], Callable[..., MigrationEvent]]:
    """``new_event(*, reason, message, ...)`` with the dataclass's defaults, and ``build(*values)``
    taking every field in order."""
    scope: dict[str, Any] = {"new": object.__new__, "cls": MigrationEvent}
    params, writes, positional = [], [], []
    for i, (name, f) in enumerate(MigrationEvent.__dataclass_fields__.items()):
        scope[f"set_{i}"] = getattr(MigrationEvent, name).__set__  # the slot's own setter
        if f.default is MISSING:
            params.append(name)
        else:
            scope[f"default_{i}"] = f.default
            params.append(f"{name}=default_{i}")
        writes.append(f"    set_{i}(event, {name})\n")
        positional.append(name)
    body = "    event = new(cls)\n" + "".join(writes) + "    return event\n"
    exec(f"def new_event(*, {', '.join(params)}):\n{body}", scope)  # our own field names only
    exec(f"def build({', '.join(positional)}):\n{body}", scope)
    return scope["new_event"], scope["build"]


new_event, _build = _generated()
new_event.__doc__ = "``MigrationEvent(**values)``, built slot by slot."


def evolve(event: MigrationEvent, **changes: Any) -> MigrationEvent:
    """``dataclasses.replace(event, **changes)``, built slot by slot."""
    values = list(_READ_ALL(event))
    for name, value in changes.items():
        values[_INDEX[name]] = value
    return _build(*values)
