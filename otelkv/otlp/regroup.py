"""Where enriched records go: the records of one received ResourceLogs regrouped into a ResourceLogs
per (namespace, KubeVirt or not), so that Loki indexes each KubeVirt record under its own
namespace and ``service.name`` — and the copies that regrouping makes held to a budget."""

from __future__ import annotations

from typing import Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from otelkv.errors import BadRequest

from .attributes import set_value
from .enrichment import EnrichOptions, EnrichResult

__all__ = ["COPY_ALLOWANCE", "CopyBudget", "Regrouped", "copy_limit", "scope_like", "too_many_copies"]

SERVICE_NAME: Final = "service.name"
NAMESPACE: Final = "k8s.namespace.name"

#: The regrouping copies a received resource once per (namespace, KubeVirt or not) of its records,
#: and a scope once per such group with records in it: a request of a large resource and many tiny
#: records, each in a namespace of its own, would grow with their product (4 MiB to gigabytes).
#: The copies made for a ResourceLogs' second group and later ones may take twice the request's size
#: and this many bytes more; past that, BadRequest. (Its first group's copies are within the
#: request's own size: the collector's shape, one event per ResourceLogs, is not even counted.)
COPY_ALLOWANCE: Final = 1 << 20


def copy_limit(request_size: int) -> int:
    """The bytes of resources and scopes an enriched request of ``request_size`` bytes may copy for
    groups after the first of each ResourceLogs."""
    return 2 * request_size + COPY_ALLOWANCE


def too_many_copies(copied: int, limit: int) -> BadRequest:
    """The error for a request whose enrichment would copy more than ``limit`` bytes."""
    return BadRequest(
        f"enriching this request would copy its resources and scopes {copied} bytes (once per namespace "
        f"of a ResourceLogs' records), more than {limit}",
        too_large=True,
    )


class CopyBudget:
    """The bytes of resources and scopes one request's enrichment copied for groups after the first
    of each ResourceLogs, held to :func:`copy_limit` (the request's size is computed only once the
    copies pass :data:`COPY_ALLOWANCE`)."""

    def __init__(self, request: ExportLogsServiceRequest) -> None:
        self._request, self._copied, self._limit = request, 0, COPY_ALLOWANCE
        self._sized = False

    def add(self, size: int) -> None:
        """Count ``size`` more bytes copied; BadRequest (too large) past the limit."""
        self._copied += size
        if self._copied > self._limit and not self._sized:
            self._sized, self._limit = True, copy_limit(self._request.ByteSize())
        if self._copied > self._limit:
            raise too_many_copies(self._copied, self._limit)


class Regrouped:
    """Where the records of one received ResourceLogs go: a ResourceLogs per (namespace, KubeVirt
    or not), made when its first record arrives (never empty), and a scope like each received one."""

    def __init__(self, result: EnrichResult, source: ResourceLogs, options: EnrichOptions, copies: CopyBudget) -> None:
        self._result, self._source, self._options, self._copies = result, source, options, copies
        self._groups: dict[tuple[str | None, bool], ResourceLogs] = {}
        self._scopes: dict[tuple[str | None, bool], ScopeLogs] = {}
        self._scope = ScopeLogs()
        self._first: tuple[str | None, bool] | None = None  # the first group: its copies are not counted
        self._resource_size = self._scope_size = -1  # read when first counted

    def enter(self, scope_logs: ScopeLogs) -> None:
        """The records added next come from ``scope_logs``."""
        self._scope, self._scopes, self._scope_size = scope_logs, {}, -1

    def add(self, record: LogRecord, namespace: str | None, kubevirt: bool) -> LogRecord:
        """A copy of ``record`` in the group of (``namespace``, ``kubevirt``), to annotate in place."""
        group = (namespace, kubevirt)
        scope = self._scopes.get(group)
        if scope is None:
            out = self._groups.get(group)
            if out is None:
                if self._first is None:
                    self._first = group
                else:
                    if self._resource_size < 0:
                        self._resource_size = self._source.resource.ByteSize()
                    self._copies.add(self._resource_size)
                out = self._groups[group] = resource_for(self._result.request, self._source, group, self._options)
            if group != self._first:
                if self._scope_size < 0:
                    self._scope_size = self._scope.scope.ByteSize()
                self._copies.add(self._scope_size)
            scope = self._scopes[group] = scope_like(out, self._scope)
        copy = scope.log_records.add()
        copy.CopyFrom(record)
        return copy


def resource_for(
    request: ExportLogsServiceRequest, source: ResourceLogs, group: tuple[str | None, bool], options: EnrichOptions
) -> ResourceLogs:
    """A new ResourceLogs in ``request`` like ``source``; for KubeVirt records, with the service
    name and the records' namespace."""
    namespace, kubevirt = group
    out = request.resource_logs.add()
    out.schema_url = source.schema_url
    out.resource.CopyFrom(source.resource)
    if kubevirt:
        set_value(out.resource.attributes, SERVICE_NAME, options.service_name)
        if namespace is not None:
            set_value(out.resource.attributes, NAMESPACE, namespace)
    return out


def scope_like(out: ResourceLogs, source: ScopeLogs) -> ScopeLogs:
    """A new ScopeLogs in ``out`` with the scope and schema of ``source``, and no records."""
    scope = out.scope_logs.add()
    scope.scope.CopyFrom(source.scope)
    scope.schema_url = source.schema_url
    return scope
