"""The native path of :func:`otelkv.otlp.enrich.enrich`: the same work on the request's wire bytes.

The compiled core (``otelkv/otlp/_wire.c``) walks the bytes, deduplicates, and hands back the
values :func:`~otelkv.kubevirt.k8s.collector_event` (the reader of :func:`~otelkv.kubevirt.parse_k8s_event`
for the collector's shape) reads of each KubeVirt record, and nothing else; parsing and
tracking stay here, in Python, exactly as the reference path does them; the core then writes the
enriched request by splicing. Its output is the reference's, byte for byte on canonical input
(``tests/test_enrich_native.py`` checks it on generated requests). For a shape it does not take
(a map body, a record enriched before, a repeated singular field, ...) :func:`enrich_wire`
answers None before anything was done, and the caller takes the reference path.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from functools import partial
from types import ModuleType
from typing import Final

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from otelkv.kubevirt import MigrationEvent, MigrationTracker
from otelkv.kubevirt.k8s import collector_event

from .enrichment import EnrichOptions, EnrichResult
from .kubevirt_records import ATTRIBUTES, KubevirtRecords
from .record_keys import content_key
from .regroup import copy_limit, too_many_copies

#: Record attributes that mark a record enriched before (the reference replaces them in place).
_ENRICHED: Final = frozenset(ATTRIBUTES)
#: (attribute, MigrationEvent field): what the core writes on an enriched record
#: (:func:`otelkv.otlp.kubevirt_records.facts_of`).
_PAIRS: Final = tuple(ATTRIBUTES.items())


def enrich_wire(
    payload: bytes,
    tracker: MigrationTracker,
    options: EnrichOptions,
    delivered: Callable[[Hashable], bool],
    *,
    core: ModuleType,
    now: datetime | None = None,
) -> EnrichResult | None:
    """Enrich the serialized ExportLogsServiceRequest ``payload`` (parsed by upb before: the
    receivers validate it) with ``core``; None, with nothing done, for a shape left to the
    reference path. :class:`~otelkv.errors.BadRequest` as the reference raises it (a request that
    would copy its resources past :func:`~otelkv.otlp.regroup.copy_limit`)."""
    scanned = core.scan(payload, options.kinds, options.drop_others, delivered, _ENRICHED)
    if scanned is None:
        return None
    plan, views, keys, (received, duplicates, dropped, passed) = scanned
    result = EnrichResult(received=received, duplicates=duplicates, dropped_others=dropped, passed=passed)
    run = KubevirtRecords(result, tracker, options, delivered, now)
    decisions: list[tuple[str | None, MigrationEvent, bytes | None] | None] = []
    done = 0
    for values, key, start, end, position in views:
        try:
            event = collector_event(*values)
        except TypeError:  # a field of a wrong type: forwarded as it came, unenriched
            result.unreadable += 1
            result.passed += 1
            decisions.append(None)
            continue
        record = None  # decoded only when needed: no uid to key it, or a summary to write
        owner = key
        if owner is None:
            record = LogRecord.FromString(payload[start:end])
            owner = content_key(record, event.cluster)
        tracked = tracker.track(event, now=now, key=owner)
        result.enriched += 1
        summary = None
        if tracked.concluded:
            result.keys.extend(keys[done:position])  # up to this record's own key: the summary's comes after
            done = position
            summary = run.summary(tracked, owner, partial(_record, payload, start, end, record))
        decisions.append(
            (tracked.event.namespace, tracked.event, None if summary is None else summary.SerializeToString())
        )
    result.keys.extend(keys[done:])
    limit = copy_limit(len(payload))
    wire = core.build(payload, plan, decisions, options.service_name, _PAIRS, limit)
    if isinstance(wire, int):
        raise too_many_copies(wire, limit)
    result.wire = wire
    return result


def _record(payload: bytes, start: int, end: int, record: LogRecord | None) -> LogRecord:
    """The record at ``payload[start:end]`` (``record`` when it was decoded already)."""
    return record if record is not None else LogRecord.FromString(payload[start:end])
