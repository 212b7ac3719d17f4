"""Kubernetes Events as the collector's ``k8s_events`` receiver turns them into OTLP logs.

Follows the contrib ``k8seventsreceiver`` (v0.147+, ``k8s_event_to_logdata.go``): one Event → one ResourceLogs with one
ScopeLogs and one LogRecord; empty fields sent as empty strings; ``k8s.event.count`` only when
non-zero; severity from the event type; time = eventTime, else lastTimestamp, else
firstTimestamp; observed time 0. Used by ``otelkv replay`` and by the tests to stand in for the
collector.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, SeverityNumber

from otelkv.kubevirt.timestamps import parse_time

from .attributes import set_value

SCOPE_NAME: Final = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/k8seventsreceiver"
_SEVERITY: Final = {"Normal": SeverityNumber.SEVERITY_NUMBER_INFO, "Warning": SeverityNumber.SEVERITY_NUMBER_WARN}


def _s(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _nanos(value: str) -> int:
    parsed = parse_time(value) if value else None
    return _unix_nanos(parsed) if parsed else 0


def _unix_nanos(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _go_time(value: str) -> str:
    """A Kubernetes time as Go's ``time.Time.String()`` prints it in UTC."""
    parsed = parse_time(value) if value else None
    return parsed.strftime("%Y-%m-%d %H:%M:%S +0000 UTC") if parsed else "0001-01-01 00:00:00 +0000 UTC"


def to_resource_logs(event: Mapping[str, Any]) -> ResourceLogs:
    """One core/v1 Event (a ``kubectl get events -o json`` item) as the receiver sends it."""
    involved = event.get("involvedObject") or {}
    source = event.get("source") or {}
    meta = event.get("metadata") or {}
    out = ResourceLogs()
    resource = out.resource.attributes
    for key, value in (
        ("k8s.node.name", _s(source, "host")),
        ("k8s.object.kind", _s(involved, "kind")),
        ("k8s.object.name", _s(involved, "name")),
        ("k8s.object.uid", _s(involved, "uid")),
        ("k8s.object.fieldpath", _s(involved, "fieldPath")),
        ("k8s.object.api_version", _s(involved, "apiVersion")),
        ("k8s.object.resource_version", _s(involved, "resourceVersion")),
    ):
        set_value(resource, key, value)
    scope = out.scope_logs.add()
    scope.scope.name = SCOPE_NAME
    record = scope.log_records.add()
    attrs = record.attributes
    for key, value in (
        ("k8s.event.reason", _s(event, "reason")),
        ("k8s.event.action", _s(event, "action")),
        ("k8s.event.start_time", _go_time(_s(meta, "creationTimestamp"))),
        ("k8s.event.name", _s(meta, "name")),
        ("k8s.event.uid", _s(meta, "uid")),
        ("k8s.namespace.name", _s(involved, "namespace")),
        ("k8s.event.reporting_controller", _s(event, "reportingComponent")),
        ("k8s.event.reporting_instance", _s(event, "reportingInstance")),
    ):
        set_value(attrs, key, value)
    count = event.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count != 0:
        attrs.add(key="k8s.event.count").value.int_value = count
    record.body.string_value = _s(event, "message")
    event_type = _s(event, "type")
    record.severity_text = event_type
    record.severity_number = _SEVERITY.get(event_type, SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED)
    record.time_unix_nano = (
        _nanos(_s(event, "eventTime")) or _nanos(_s(event, "lastTimestamp")) or _nanos(_s(event, "firstTimestamp"))
    )
    return out
