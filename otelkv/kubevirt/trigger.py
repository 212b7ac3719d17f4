"""Who started a migration: KubeVirt's own word on the VirtualMachineInstanceMigration.

KubeVirt names the migrations it makes with a ``generateName`` and annotates some of them
(``pkg/virt-controller/watch/drain/evacuation/evacuation.go``,
``pkg/virt-controller/watch/workload-updater/workload-updater.go``, ``pkg/virt-api/rest/lifecycle.go``):

========================  ================================  ==============================================
trigger                   generateName                      annotation
========================  ================================  ==============================================
``evacuation``            ``kubevirt-evacuation-``          ``kubevirt.io/evacuationMigration: <node>``
``workload-update``       ``kubevirt-workload-update-``     ``kubevirt.io/workloadUpdateMigration``
``user``                  ``kubevirt-migrate-vm-``          (``virtctl migrate``, the ``migrate`` subresource)
``other``                 anything else                     (made by a person or another tool)
========================  ================================  ==============================================

The object's annotations say it outright (``trigger_source`` ``object``); an event names the
migration only, so from events alone the name's prefix says it (``trigger_source`` ``name``).
Without the migration's name nothing is said: never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

EVACUATION: Final = "evacuation"
WORKLOAD_UPDATE: Final = "workload-update"
USER: Final = "user"
OTHER: Final = "other"
TRIGGERS: Final = (EVACUATION, WORKLOAD_UPDATE, USER, OTHER)

#: Where a trigger was read: the object's annotations, or the migration's name.
FROM_OBJECT: Final = "object"
FROM_NAME: Final = "name"

EVACUATION_ANNOTATION: Final = "kubevirt.io/evacuationMigration"
WORKLOAD_UPDATE_ANNOTATION: Final = "kubevirt.io/workloadUpdateMigration"

_PREFIXES: Final = (
    ("kubevirt-evacuation-", EVACUATION),
    ("kubevirt-workload-update-", WORKLOAD_UPDATE),
    ("kubevirt-migrate-vm-", USER),
)


def trigger_of_name(name: str | None) -> str | None:
    """The trigger a migration's name says (``other`` for a name KubeVirt did not generate)."""
    if not name:
        return None
    if not name.startswith("kubevirt-"):  # the prefix of all three: one test for most names
        return OTHER
    for prefix, trigger in _PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return trigger
    return OTHER


def trigger_of_annotations(annotations: Mapping[str, Any], name: str | None) -> str | None:
    """The trigger an object's annotations say; else its name's (KubeVirt marks only two)."""
    if isinstance(annotations.get(EVACUATION_ANNOTATION), str):
        return EVACUATION
    if WORKLOAD_UPDATE_ANNOTATION in annotations:
        return WORKLOAD_UPDATE
    return trigger_of_name(name)
