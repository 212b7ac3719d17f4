"""Enrich an OTLP logs request: KubeVirt event records get their migration facts as attributes.

A pure function of the request and the shared state it is given (the migration tracker and the
duplicate window); it walks resource → scope → record and leaves the reading of events to
:mod:`otelkv.kubevirt`. What it changes, and nothing else:

- on a KubeVirt event record: the ``kubevirt.*`` attributes whose value is known;
- the resource of such records: ``service.name`` and ``k8s.namespace.name`` (the record's
  namespace, so that Loki indexes it as a label). Records of one ResourceLogs that differ in
  namespace or kind are split into ResourceLogs of their own; a record never moves to a
  resource that does not describe it;
- beside the record that ends a migration: one ``kubevirt.migration.summary`` record
  (``summaries``);
- a ``k8sobjects`` record of a VirtualMachineInstanceMigration: read into the tracker, and
  consumed unless ``forward_objects``.

Records that are not KubeVirt events keep their resource and bytes (or are dropped when so
configured). Exact duplicates — same ``k8s.event.uid`` and count as a record already delivered
or earlier in the same request — are dropped; the caller marks keys delivered only once the
target accepted them: a request the collector sends again after an outage must not be dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.kubevirt import MigrationTracker

from .attributes import to_dict
from .enrichment import EnrichOptions, EnrichResult, first_time
from .k8s_objects import map_body, migration_object_of
from .kubevirt_records import ATTRIBUTES, KubevirtRecords, annotate
from .pass_through import passed_through
from .record_keys import cluster_of, content_key, key_of
from .regroup import CopyBudget, Regrouped

__all__ = ["ATTRIBUTES", "EnrichOptions", "EnrichResult", "enrich"]


def enrich(
    request: ExportLogsServiceRequest,
    tracker: MigrationTracker,
    options: EnrichOptions,
    delivered: Callable[[Hashable], bool],
    *,
    now: datetime | None = None,
    pass_through: bool = True,
) -> EnrichResult:
    """Enrich ``request``; ``delivered(key)`` tells whether a record key was delivered before.

    ``now`` is when the request arrived: the tracker reads an event stamped far after it as undated.
    ``pass_through=False`` takes every ResourceLogs through the reference path (for differential
    tests): the output is the same. :class:`~otelkv.errors.BadRequest` (too large) when the split
    would copy resources and scopes past :func:`~otelkv.otlp.regroup.copy_limit` (the tracker may have seen some of the
    request's events by then; none is forwarded).
    """
    result = EnrichResult(message=ExportLogsServiceRequest())
    run = KubevirtRecords(result, tracker, options, delivered, now)
    seen: set[Hashable] = set()
    copies = CopyBudget(request)
    for resource_logs in request.resource_logs:
        resource = to_dict(resource_logs.resource.attributes)  # read once, for both paths
        if pass_through and passed_through(
            result, options, delivered, seen=seen, resource_logs=resource_logs, resource=resource
        ):
            continue
        out = Regrouped(result, resource_logs, options, copies)
        cluster = cluster_of(resource)
        for scope_logs in resource_logs.scope_logs:
            out.enter(scope_logs)
            for record in scope_logs.log_records:
                result.received += 1
                attributes = to_dict(record.attributes)  # read once: key, view and annotation use it
                key = key_of(attributes, cluster)
                if not first_time(key, seen, delivered, result):
                    continue
                body = map_body(record)  # read once: the object and the Event reader both use it
                found = migration_object_of(body)
                if found is not None:
                    run.take_object(found, record, resource, out, cluster)
                    continue
                kubevirt, tracked = run.read(resource, attributes, record, body, key)
                if kubevirt and tracked is None:
                    result.unreadable += 1  # a field of a wrong type: forwarded as it came, unenriched
                if not kubevirt and options.drop_others:
                    result.dropped_others += 1
                    continue
                if tracked is None:
                    out.add(record, None, False)
                    result.passed += 1
                    continue
                event = tracked.event
                copy = out.add(record, event.namespace, True)
                annotate(copy, event, enriched_before=not attributes.keys().isdisjoint(ATTRIBUTES))
                result.enriched += 1
                if tracked.concluded:
                    owner = key if key is not None else content_key(record, event.cluster)
                    run.summarize(tracked, owner, record, event.namespace, out)
    return result
