"""What identifies a record for the duplicate window: a Kubernetes Event's uid and count, or the
record's own bytes when it has no uid (a retry sends the same ones)."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping
from typing import Any, Final

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from .attributes import value_of

__all__ = ["EVENT_COUNT", "EVENT_UID", "content_key", "key_of", "record_key"]

EVENT_UID: Final = "k8s.event.uid"
EVENT_COUNT: Final = "k8s.event.count"


def key_of(attributes: Mapping[str, Any]) -> Hashable | None:
    """The duplicate key of a record from its attributes: (event uid, count), or None without a uid."""
    uid = attributes.get(EVENT_UID)
    if not isinstance(uid, str) or not uid:
        return None
    return (uid, hashable_count(attributes.get(EVENT_COUNT)))


def record_key(record: LogRecord) -> Hashable | None:
    """:func:`key_of` of the record's attributes, reading only the two it needs."""
    uid = count = None
    for kv in record.attributes:
        name = kv.key
        if name == EVENT_UID:
            uid = kv.value
        elif name == EVENT_COUNT:
            count = kv.value
    if uid is None or uid.WhichOneof("value") != "string_value" or not uid.string_value:
        return None
    return (uid.string_value, None if count is None else hashable_count(value_of(count)))


def content_key(record: LogRecord) -> Hashable:
    """What identifies a record without an event uid: its bytes (a retry sends the same ones)."""
    return ("record", hashlib.sha256(record.SerializeToString(deterministic=True)).hexdigest())


def hashable_count(count: Any) -> Hashable:
    """A count as part of a key: a list, map or float value (never sent by the receiver, but valid
    OTLP) as its text, so that a set can hold it instead of the whole request failing, and a NaN
    (never equal to itself) still matches its retry."""
    return repr(count) if isinstance(count, list | dict | float) else count
