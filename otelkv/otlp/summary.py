"""One summary record per migration: what happened, in one line and in attributes.

Added by :func:`otelkv.otlp.enrich.enrich` beside the record that made a migration terminal, in
the same ResourceLogs and scope. Record attribute ``event.name`` (and the LogRecord's
``event_name`` field, which opentelemetry-proto >= 1.5 has) is ``kubevirt.migration.summary``,
so a LogQL query counts migrations by counting these records, whatever object kinds the
collector sends. Its resource is the ending record's, so it carries that record's
``k8s.cluster.name``.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from typing import Final

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber

from otelkv.kubevirt import Migration, trigger

from .attributes import add_values

EVENT_NAME: Final = "kubevirt.migration.summary"
_HAS_EVENT_NAME: Final = "event_name" in LogRecord.DESCRIPTOR.fields_by_name
_CAUSES: Final = {trigger.WORKLOAD_UPDATE: "KubeVirt update"}


def summary_key(owner: Hashable) -> Hashable:
    """The duplicate-filter key of the summary the record keyed ``owner`` concluded."""
    return (EVENT_NAME, owner)


def cause(m: Migration) -> str:
    """Why it migrated, in words, when KubeVirt started it: ``node01 drain`` (an evacuation: the
    drained node is its source), ``KubeVirt update``; "" when a person or a tool asked for it
    (``user``, ``other``: the attribute ``kubevirt.migration.trigger`` says which) or nobody says."""
    if m.trigger == trigger.EVACUATION:
        return f"{m.source_node} drain" if m.source_node else "node drain"
    return _CAUSES.get(m.trigger or "", "")


def line(m: Migration) -> str:
    """``fedora-vm migrated node01 → node02 in 31 s (node01 drain)`` / ``… failed after 12 s
    (node01 drain): <reason>``: the cause in brackets when :func:`cause` names one."""
    nodes = f"{m.source_node or '?'} → {m.target_node or '?'}"
    seconds = m.duration_seconds
    why = f" ({text})" if (text := cause(m)) else ""
    if m.phase == "Succeeded":
        took = f" in {seconds:.0f} s" if seconds is not None else ""
        return f"{m.vm_name} migrated {nodes}{took}{why}"
    took = f" after {seconds:.0f} s" if seconds is not None else ""
    reason = f": {m.failure_reason}" if m.failure_reason else ""
    return f"{m.vm_name} migration {nodes} failed{took}{why}{reason}"


def summary_record(m: Migration, ending: LogRecord) -> LogRecord:
    """The summary of terminal migration ``m``, timed like the ``ending`` record it is added beside."""
    record = LogRecord(
        time_unix_nano=ending.time_unix_nano or _nanos(m.ended), observed_time_unix_nano=ending.observed_time_unix_nano
    )
    record.body.string_value = line(m)
    ok = m.phase == "Succeeded"
    record.severity_number = SeverityNumber.SEVERITY_NUMBER_INFO if ok else SeverityNumber.SEVERITY_NUMBER_WARN
    record.severity_text = "INFO" if ok else "WARN"
    if _HAS_EVENT_NAME:
        record.event_name = EVENT_NAME
    facts: list[tuple[str, str | float]] = [("event.name", EVENT_NAME)]
    for attribute, value in (
        ("kubevirt.vm.name", m.vm_name),
        ("kubevirt.migration.phase", m.phase),
        ("kubevirt.migration.source_node", m.source_node),
        ("kubevirt.migration.target_node", m.target_node),
        ("kubevirt.migration.name", m.migration_name),
        ("kubevirt.migration.uid", m.migration_uid),
        ("kubevirt.migration.target_pod", m.target_pod),
        ("kubevirt.migration.failure_reason", m.failure_reason if not ok else None),
        ("kubevirt.migration.mode", m.mode),
        ("kubevirt.migration.abort_status", m.abort_status),
        ("kubevirt.migration.trigger", m.trigger),
        ("kubevirt.migration.trigger_source", m.trigger_source),
        ("kubevirt.migration.start_time", m.started.isoformat() if m.started else None),
        ("kubevirt.migration.end_time", m.ended.isoformat() if m.ended else None),
        ("kubevirt.migration.duration_seconds", m.duration_seconds),
    ):
        if value is not None and value != "":
            facts.append((attribute, value))
    add_values(record.attributes, facts)
    return record


def _nanos(when: datetime | None) -> int:
    if when is None:
        return 0
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
