"""Read a Kubernetes Event, in any of the shapes it reaches otelkv, into :func:`parse_event`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from .model import MigrationEvent
from .parse import parse_event, read_event
from .timestamps import from_unix_nanos, parse_time


def parse_k8s_event(obj: Mapping[str, Any]) -> MigrationEvent:
    """Read the migration facts of a Kubernetes Event given as a mapping.

    Accepted shapes, told apart by their keys:

    - a core/v1 Event, as an item of ``kubectl get events -o json`` (``involvedObject``,
      ``source``, ``reportingComponent``/``reportingInstance``, ``count``, timestamps);
    - an events.k8s.io/v1 Event (``regarding``, ``note``, ``reportingController``,
      ``reportingInstance``, ``deprecatedSource``, ``series``);
    - a watch event ``{"type": "ADDED", "object": <Event>}`` (the collector's ``k8sobjects``
      receiver body);
    - the collector ``k8s_events`` receiver's attributes, resource and record merged into one
      mapping (``k8s.event.reason``, ``k8s.object.kind``, ``k8s.node.name``, ``k8s.cluster.name``,
      …) plus ``body`` (the message), ``severity_text`` (the event type) and ``timestamp`` (a
      datetime, an RFC 3339 string, or OTLP nanoseconds).

    The event time is the latest one the event carries. A field of a wrong type raises
    TypeError naming it; a missing field is unknown.
    """
    if not isinstance(obj, Mapping):
        raise TypeError(f"obj must be a mapping, got {type(obj).__name__}")
    inner = obj.get("object")
    if isinstance(inner, Mapping) and "kind" not in obj and "reason" not in obj:
        obj = inner
    if "k8s.event.reason" in obj or "k8s.object.kind" in obj:
        return _from_collector(obj)
    if "regarding" in obj or "note" in obj or str(obj.get("apiVersion", "")).startswith("events.k8s.io"):
        return _from_events_v1(obj)
    return _from_core_v1(obj)


def _from_core_v1(obj: Mapping[str, Any]) -> MigrationEvent:
    involved = _map(obj, "involvedObject")
    source = _map(obj, "source")
    series = _map(obj, "series")
    return parse_event(
        reason=_str(obj, "reason") or "",
        message=_str(obj, "message") or "",
        event_type=_str(obj, "type"),
        object_kind=_str(involved, "kind", "involvedObject."),
        object_name=_str(involved, "name", "involvedObject."),
        object_uid=_str(involved, "uid", "involvedObject."),
        namespace=_str(involved, "namespace", "involvedObject.") or _str(_map(obj, "metadata"), "namespace"),
        component=_str(source, "component", "source.") or _str(obj, "reportingComponent"),
        host=_str(source, "host", "source.") or _str(obj, "reportingInstance"),
        timestamp=_latest(
            (series, "lastObservedTime", "series."),
            (obj, "lastTimestamp", ""),
            (obj, "eventTime", ""),
            (obj, "firstTimestamp", ""),
        ),
        count=_int(obj, "count") or _int(series, "count", "series."),
    )


def _from_events_v1(obj: Mapping[str, Any]) -> MigrationEvent:
    regarding = _map(obj, "regarding")
    source = _map(obj, "deprecatedSource")
    series = _map(obj, "series")
    return parse_event(
        reason=_str(obj, "reason") or "",
        message=_str(obj, "note") or "",
        event_type=_str(obj, "type"),
        object_kind=_str(regarding, "kind", "regarding."),
        object_name=_str(regarding, "name", "regarding."),
        object_uid=_str(regarding, "uid", "regarding."),
        namespace=_str(regarding, "namespace", "regarding.") or _str(_map(obj, "metadata"), "namespace"),
        component=_str(obj, "reportingController") or _str(source, "component", "deprecatedSource."),
        host=_str(obj, "reportingInstance") or _str(source, "host", "deprecatedSource."),
        timestamp=_latest(
            (series, "lastObservedTime", "series."),
            (obj, "deprecatedLastTimestamp", ""),
            (obj, "eventTime", ""),
            (obj, "deprecatedFirstTimestamp", ""),
        ),
        count=_int(series, "count", "series.") or _int(obj, "deprecatedCount"),
    )


#: What :func:`collector_event` reads of the ``k8s_events`` shape, in the order of its parameters:
#: the attributes (resource's or record's) and the record's own fields (``body``, ``severity_text``,
#: ``timestamp``). The compiled core hands over these values of a record, and nothing else.
COLLECTOR_FIELDS: Final[tuple[str, ...]] = (
    "k8s.event.reason",
    "body",
    "severity_text",
    "k8s.object.kind",
    "k8s.object.name",
    "k8s.object.uid",
    "k8s.namespace.name",
    "k8s.event.reporting_controller",
    "k8s.node.name",
    "k8s.event.reporting_instance",
    "timestamp",
    "k8s.event.start_time",
    "k8s.event.count",
    "k8s.cluster.name",
)


#: The attributes of the collector's ``k8s_events`` shape that :func:`parse_k8s_event` reads on a
#: resource (all of :data:`COLLECTOR_FIELDS`' attributes but the record's start time): a caller
#: building the mapping from a resource and a record need copy no others (a resource of hundreds
#: of attributes, copied for each of thousands of records, was hundreds of MiB).
COLLECTOR_KEYS: Final[tuple[str, ...]] = tuple(
    f for f in COLLECTOR_FIELDS if f.startswith("k8s.") and f != "k8s.event.start_time"
)


def _from_collector(obj: Mapping[str, Any]) -> MigrationEvent:
    return collector_event(*map(obj.get, COLLECTOR_FIELDS))


def collector_event(  # noqa: PLR0917 - positional: one call a record, 14 keywords cost more
    reason: Any,
    message: Any,
    event_type: Any,
    kind: Any,
    name: Any,
    uid: Any,
    namespace: Any,
    component: Any,
    node: Any,
    instance: Any,
    timestamp: Any,
    start_time: Any,
    count: Any,
    cluster: Any,
) -> MigrationEvent:
    """:func:`parse_k8s_event` of the collector's ``k8s_events`` shape, given the values of
    :data:`COLLECTOR_FIELDS` (None where absent) in that order: what a reader of the wire format
    calls without making the mapping. TypeError naming the first value of a wrong type."""
    texts = (reason, message, event_type, kind, name, uid, namespace, component, node, instance, cluster)
    plain = _TEXT.issuperset(map(type, texts))
    if type(timestamp) is int and plain and (count is None or type(count) is int):
        when = from_unix_nanos(timestamp)  # the collector's own shape: checked in one go
        if when is None and start_time is not None:  # an unset record time: the receiver's start
            when = _latest(({"k8s.event.start_time": start_time}, "k8s.event.start_time", ""))
    else:
        when = _collector_checked(texts, timestamp, start_time, count)
    return read_event(
        reason or "",
        message or "",
        event_type or None,
        kind or None,
        name or None,
        uid or None,
        namespace or None,
        component or None,
        node or instance or None,
        when,
        count,
        cluster or None,
    )


#: The exact types of a text value (str or None): checked first, and quickly.
_TEXT: Final = frozenset({str, type(None)})
_TEXT_KEYS: Final = (*COLLECTOR_FIELDS[:10], COLLECTOR_FIELDS[13])


def _collector_checked(texts: tuple[Any, ...], timestamp: Any, start_time: Any, count: Any) -> datetime | None:
    """The record time of the collector's shape, after TypeError for the first value of a wrong type
    (in the order the fields are read: texts, the time, the count, the cluster)."""
    values = dict(zip(_TEXT_KEYS, texts, strict=True))
    for key in _TEXT_KEYS[:9]:
        _str(values, key)
    if not values["k8s.node.name"]:
        _str(values, "k8s.event.reporting_instance")  # read only when the node is not named
    obj = {"timestamp": timestamp, "k8s.event.start_time": start_time}
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        found = from_unix_nanos(timestamp)
    elif isinstance(timestamp, datetime) or timestamp is None:
        found = timestamp
    else:
        found = parse_time(_str(obj, "timestamp") or "")
    if not found:
        found = _latest((obj, "k8s.event.start_time", ""))
    _int({"k8s.event.count": count}, "k8s.event.count")
    if found is not None and (found.tzinfo is None or found.utcoffset() is None):
        raise TypeError("timestamp must be a timezone-aware datetime, got a naive one")
    _str(values, "k8s.cluster.name")
    return found


def _map(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be a mapping, got {type(value).__name__}")
    return value


def _str(obj: Mapping[str, Any], key: str, path: str = "") -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise TypeError(f"{path}{key} must be a str, got {type(value).__name__}")


def _int(obj: Mapping[str, Any], key: str, path: str = "") -> int | None:
    value = obj.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise TypeError(f"{path}{key} must be an int, got {type(value).__name__}")


def _latest(*candidates: tuple[Mapping[str, Any], str, str]) -> datetime | None:
    """The first of ``candidates`` that holds a readable time (they come latest first)."""
    for obj, key, path in candidates:
        value = obj.get(key)
        if isinstance(value, datetime):
            return value
        text = _str(obj, key, path)
        parsed = parse_time(text) if text else None
        if parsed is not None:
            return parsed
    return None
