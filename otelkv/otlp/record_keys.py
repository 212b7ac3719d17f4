"""What identifies a record for the duplicate window: a Kubernetes Event's uid and count, or the
record's own bytes when it has no uid (a retry sends the same ones)."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping
from typing import Any, Final

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from .attributes import value_of

__all__ = ["EVENT_COUNT", "EVENT_UID", "MAX_KEY_BYTES", "content_key", "key_of", "record_key"]

EVENT_UID: Final = "k8s.event.uid"
EVENT_COUNT: Final = "k8s.event.count"
#: The longest event uid or count text a key holds (a Kubernetes uid is a 36-character UUID).
MAX_KEY_BYTES: Final = 64


def key_of(attributes: Mapping[str, Any]) -> Hashable | None:
    """The duplicate key of a record from its attributes: (event uid, count); None without a uid,
    or when the uid or the count is longer than :data:`MAX_KEY_BYTES` (then the record is not
    deduplicated: the duplicate window holds only keys of a bounded size)."""
    uid = attributes.get(EVENT_UID)
    if not isinstance(uid, str) or not uid or _too_long(uid):
        return None
    return _key(uid, hashable_count(attributes.get(EVENT_COUNT)))


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
    if _too_long(uid.string_value):
        return None
    return _key(uid.string_value, None if count is None else hashable_count(value_of(count)))


def _key(uid: str, count: Hashable) -> Hashable | None:
    if isinstance(count, str | bytes) and _too_long(count):
        return None
    return (uid, count)


def _too_long(text: str | bytes) -> bool:
    """Longer than :data:`MAX_KEY_BYTES` in UTF-8 (as the compiled core measures it)."""
    if isinstance(text, bytes):
        return len(text) > MAX_KEY_BYTES
    if len(text) > MAX_KEY_BYTES:
        return True
    return not text.isascii() and len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES


def content_key(record: LogRecord) -> Hashable:
    """What identifies a record without an event uid: its bytes (a retry sends the same ones)."""
    return ("record", hashlib.sha256(record.SerializeToString(deterministic=True)).hexdigest())


def hashable_count(count: Any) -> Hashable:
    """A count as part of a key: a list, map or float value (never sent by the receiver, but valid
    OTLP) as its text, so that a set can hold it instead of the whole request failing, and a NaN
    (never equal to itself) still matches its retry."""
    return repr(count) if isinstance(count, list | dict | float) else count
