"""The fast path of enrichment: a ResourceLogs that cannot hold a KubeVirt event or object passes
as it came, only deduplicated, as the reference path would build it — at a fraction of its cost."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from .enrichment import EnrichOptions, EnrichResult, first_time
from .kubevirt_records import OBJECT_KIND
from .record_keys import cluster_of, record_key
from .regroup import scope_like

__all__ = ["passed_through"]


def passed_through(
    result: EnrichResult,
    options: EnrichOptions,
    delivered: Callable[[Hashable], bool],
    *,
    seen: set[Hashable],
    resource_logs: ResourceLogs,
    resource: Mapping[str, Any],
) -> bool:
    """Take a ResourceLogs none of whose records can be a KubeVirt event or object, as the reference
    path would, at a fraction of its cost; False (nothing done) when it may hold one.

    Its resource's kind is not one of ``options.kinds`` and no record has a map body (the
    ``k8sobjects`` shapes): then every record passes as it came, only deduplicated, in one
    ResourceLogs like the received one (empty scopes left out). Only each record's uid and
    count are read, and the records are copied in C, not one by one.
    """
    kind = resource.get(OBJECT_KIND)
    if isinstance(kind, str) and kind in options.kinds:
        return False
    scopes = []
    cluster = cluster_of(resource)
    for scope_logs in resource_logs.scope_logs:
        records = scope_logs.log_records
        keys = []
        for record in records:
            if record.body.WhichOneof("value") == "kvlist_value":
                return False
            keys.append(record_key(record, cluster))
        scopes.append((scope_logs, records, keys))
    parts: list[tuple[ScopeLogs, list[LogRecord] | None]] = []  # None: all its records
    for scope_logs, records, keys in scopes:
        kept = []
        for record, key in zip(records, keys, strict=True):
            result.received += 1
            if not first_time(key, seen, delivered, result):
                continue
            kept.append(record)
        if options.drop_others:
            result.dropped_others += len(kept)
        elif kept:
            result.passed += len(kept)
            parts.append((scope_logs, None if len(kept) == len(records) else kept))
    if not parts:
        return True
    if _as_built(resource_logs, parts):  # what the reference builds is a copy: one C call
        result.request.resource_logs.add().CopyFrom(resource_logs)
        return True
    out = result.request.resource_logs.add()
    out.schema_url = resource_logs.schema_url
    out.resource.CopyFrom(resource_logs.resource)
    for scope_logs, some in parts:
        scope_like(out, scope_logs).log_records.extend(scope_logs.log_records if some is None else some)
    return True


def _as_built(resource_logs: ResourceLogs, parts: list[tuple[ScopeLogs, list[LogRecord] | None]]) -> bool:
    """Whether the reference path would build ``resource_logs`` again as it is: every scope keeps all
    its records, the resource and scopes are set (the reference sets them), and no field of this
    version's schema is unknown at these two levels (the reference copies known fields only)."""
    if len(parts) != len(resource_logs.scope_logs) or not resource_logs.HasField("resource"):
        return False
    if len(UnknownFieldSet(resource_logs)):
        return False
    return all(
        kept is None and scope_logs.HasField("scope") and not len(UnknownFieldSet(scope_logs))
        for scope_logs, kept in parts
    )
