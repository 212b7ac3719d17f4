"""Migration objects as the collector's ``k8sobjects`` receiver sends them.

Read from the receiver's source (contrib ``receiver/k8sobjectsreceiver``,
``unstructured_to_logdata.go``): one LogRecord per object, the body a map — in watch mode
``{"type": "ADDED"|"MODIFIED"|"DELETED", "object": <object>}`` with record attributes
``event.domain=k8s`` and ``event.name=<object name>``, in pull mode the object alone; record
attribute ``k8s.resource.name`` (``virtualmachineinstancemigrations``); resource only
``k8s.namespace.name``; observed time set, no timestamp. A pull also ends with a
``{"type": "PullEnd", "object": {"kind": …}}`` record, which is no object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from otelkv.kubevirt.objects import is_migration_object

from .attributes import value_of


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """A migration object carried by a record: how it came (watch type, None in pull mode)."""

    watch_type: str | None
    object: Mapping[str, Any]

    @property
    def listing(self) -> bool:
        """A listed object (pull mode, a watch's initial state), not a change as it happened."""
        return self.watch_type in (None, "ADDED")

    @property
    def deleted(self) -> bool:
        """The object was deleted (KubeVirt garbage-collects finished migrations)."""
        return self.watch_type == "DELETED"


def map_body(record: LogRecord) -> dict[str, Any] | None:
    """The record's body as plain data when it is a map (the ``k8sobjects`` receiver's bodies)."""
    if record.body.WhichOneof("value") != "kvlist_value":
        return None
    body: dict[str, Any] = value_of(record.body)
    return body


def migration_object_of(body: Mapping[str, Any] | None) -> ObjectRecord | None:
    """The VirtualMachineInstanceMigration a map body (:func:`map_body`) carries, watch or pull shape."""
    if body is None:
        return None
    inner, watch_type = body.get("object"), body.get("type")
    if isinstance(inner, dict) and isinstance(watch_type, str):
        return ObjectRecord(watch_type, inner) if is_migration_object(inner) else None
    return ObjectRecord(None, body) if is_migration_object(body) else None
