"""What identifies a record for the duplicate window: a Kubernetes Event's uid and count, or the
record's own bytes when it has no uid (a retry sends the same ones) — and its cluster (resource
attribute ``k8s.cluster.name``) when the collector sets one: several clusters may send one otelkv.

Keys are plain tuples of str, int, bytes and None (the duplicate window saves them): ``(uid,
count)`` without a cluster, ``(uid, count, cluster)`` with one."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping
from typing import Any, Final

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from .attributes import value_of

__all__ = [
    "CLUSTER",
    "EVENT_COUNT",
    "EVENT_UID",
    "MAX_CLUSTER_BYTES",
    "MAX_KEY_BYTES",
    "cluster_of",
    "content_key",
    "key_of",
    "record_key",
]

EVENT_UID: Final = "k8s.event.uid"
EVENT_COUNT: Final = "k8s.event.count"
#: The resource attribute naming the cluster a record came from.
CLUSTER: Final = "k8s.cluster.name"
#: The longest event uid or count text a key holds (a Kubernetes uid is a 36-character UUID).
MAX_KEY_BYTES: Final = 64
#: The longest cluster name a key holds, in UTF-8 (a DNS name's length); a longer one is no cluster.
MAX_CLUSTER_BYTES: Final = 253


def cluster_of(resource: Mapping[str, Any]) -> str | None:
    """The cluster a resource names (``k8s.cluster.name``, a non-empty string of at most
    :data:`MAX_CLUSTER_BYTES`), else None."""
    cluster = resource.get(CLUSTER)
    if not isinstance(cluster, str) or not cluster or len(cluster.encode("utf-8", "surrogatepass")) > MAX_CLUSTER_BYTES:
        return None
    return cluster


def key_of(attributes: Mapping[str, Any], cluster: str | None = None) -> Hashable | None:
    """The duplicate key of a record from its attributes (and its resource's ``cluster``): (event
    uid, count[, cluster]); None without a uid, or when the uid or the count is longer than
    :data:`MAX_KEY_BYTES` (then the record is not deduplicated: the duplicate window holds only
    keys of a bounded size)."""
    uid = attributes.get(EVENT_UID)
    if not isinstance(uid, str) or not uid or _too_long(uid):
        return None
    return _key(uid, hashable_count(attributes.get(EVENT_COUNT)), cluster)


def record_key(record: LogRecord, cluster: str | None = None) -> Hashable | None:
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
    return _key(uid.string_value, None if count is None else hashable_count(value_of(count)), cluster)


def _key(uid: str, count: Hashable, cluster: str | None) -> Hashable | None:
    if isinstance(count, str | bytes) and _too_long(count):
        return None
    return (uid, count) if cluster is None else (uid, count, cluster)


def _too_long(text: str | bytes) -> bool:
    """Longer than :data:`MAX_KEY_BYTES` in UTF-8 (as the compiled core measures it)."""
    if isinstance(text, bytes):
        return len(text) > MAX_KEY_BYTES
    if len(text) > MAX_KEY_BYTES:
        return True
    return not text.isascii() and len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES


def content_key(record: LogRecord, cluster: str | None = None) -> Hashable:
    """What identifies a record without an event uid: its bytes (a retry sends the same ones), and
    the cluster it came from."""
    digest = hashlib.sha256(record.SerializeToString(deterministic=True)).hexdigest()
    return ("record", digest) if cluster is None else ("record", digest, cluster)


def hashable_count(count: Any) -> Hashable:
    """A count as part of a key: a list, map or float value (never sent by the receiver, but valid
    OTLP) as its text, so that a set can hold it instead of the whole request failing, and a NaN
    (never equal to itself) still matches its retry."""
    return repr(count) if isinstance(count, list | dict | float) else count
