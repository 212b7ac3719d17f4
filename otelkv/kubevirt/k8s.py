"""Read a Kubernetes Event, in any of the shapes it reaches otelkv, into :func:`parse_event`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from .event_builders import evolve
from .model import MigrationEvent
from .names import kubernetes_name
from .parse import parse_event
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


#: The attributes of the collector's ``k8s_events`` shape that :func:`parse_k8s_event` reads: a
#: caller building the mapping from a resource and a record need copy no others (a resource of
#: hundreds of attributes, copied for each of thousands of records, was hundreds of MiB).
COLLECTOR_KEYS: Final[tuple[str, ...]] = (
    "k8s.event.reason",
    "k8s.object.kind",
    "k8s.object.name",
    "k8s.object.uid",
    "k8s.namespace.name",
    "k8s.event.reporting_controller",
    "k8s.node.name",
    "k8s.event.reporting_instance",
    "k8s.event.count",
    "k8s.cluster.name",
)


def _from_collector(obj: Mapping[str, Any]) -> MigrationEvent:
    event = parse_event(
        reason=_str(obj, "k8s.event.reason") or "",
        message=_str(obj, "body") or "",
        event_type=_str(obj, "severity_text"),
        object_kind=_str(obj, "k8s.object.kind"),
        object_name=_str(obj, "k8s.object.name"),
        object_uid=_str(obj, "k8s.object.uid"),
        namespace=_str(obj, "k8s.namespace.name"),
        component=_str(obj, "k8s.event.reporting_controller"),
        host=_str(obj, "k8s.node.name") or _str(obj, "k8s.event.reporting_instance"),
        timestamp=_collector_time(obj),
        count=_int(obj, "k8s.event.count"),
    )
    cluster = _str(obj, "k8s.cluster.name")
    return evolve(event, cluster=kubernetes_name(cluster)) if cluster else event


def _collector_time(obj: Mapping[str, Any]) -> datetime | None:
    value = obj.get("timestamp")
    if isinstance(value, int) and not isinstance(value, bool):
        found = from_unix_nanos(value)
    elif isinstance(value, datetime) or value is None:
        found = value
    else:
        found = parse_time(_str(obj, "timestamp") or "")
    return found or _latest((obj, "k8s.event.start_time", ""))


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
