"""KubeVirt records in OTLP: which records are KubeVirt events (the ``k8s_events`` and ``k8sobjects``
shapes), what the tracker learns from them and from migration objects, and the ``kubevirt.*``
attributes written back on them."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber

from otelkv.kubevirt import MigrationEvent, MigrationTracker, parse_k8s_event
from otelkv.kubevirt.event_builders import evolve
from otelkv.kubevirt.k8s import COLLECTOR_KEYS
from otelkv.kubevirt.objects import read_migration_object
from otelkv.kubevirt.tracker import Tracked

from .attributes import add_values, set_value
from .enrichment import EnrichOptions, EnrichResult
from .k8s_objects import ObjectRecord
from .record_keys import cluster_of, content_key
from .regroup import NAMESPACE, Regrouped
from .summary import summary_key, summary_record

__all__ = ["ATTRIBUTES", "OBJECT_KIND", "KubevirtRecords", "annotate", "event_view", "facts_of"]

OBJECT_KIND: Final = "k8s.object.kind"
#: The event type when only the severity number came (the receiver sets the text for known types).
_TYPE_OF_SEVERITY: Final = {
    SeverityNumber.SEVERITY_NUMBER_INFO: "Normal",
    SeverityNumber.SEVERITY_NUMBER_WARN: "Warning",
}

#: Record attributes otelkv sets, and the MigrationEvent field each comes from.
ATTRIBUTES: Final[Mapping[str, str]] = {
    "kubevirt.vm.name": "vm_name",
    "kubevirt.migration.phase": "phase",
    "kubevirt.migration.source_node": "source_node",
    "kubevirt.migration.target_node": "target_node",
    "kubevirt.migration.name": "migration_name",
    "kubevirt.migration.uid": "migration_uid",
    "kubevirt.migration.target_pod": "target_pod",
    "kubevirt.migration.failure_reason": "failure_reason",
    "kubevirt.migration.duration_seconds": "duration_seconds",
    "kubevirt.migration.trigger": "trigger",
    "kubevirt.migration.trigger_source": "trigger_source",
}


@dataclass(slots=True)
class KubevirtRecords:
    """Reads one request's KubeVirt records into the tracker: events, migration objects, and the
    summary ending the record that ends a migration. What one call of :func:`enrich` shares."""

    result: EnrichResult
    tracker: MigrationTracker
    options: EnrichOptions
    delivered: Callable[[Hashable], bool]
    now: datetime | None
    summarized: set[Hashable] = field(default_factory=set)

    def read(
        self,
        resource: dict[str, Any],
        attributes: dict[str, Any],
        record: LogRecord,
        body: Mapping[str, Any] | None,
        key: Hashable | None,
    ) -> tuple[bool, Tracked | None]:
        """Whether ``record`` is a KubeVirt event, and its facts once the tracker saw it."""
        view = event_view(resource, attributes, record, body, self.options.kinds)
        if view is None:
            return False, None
        try:
            event = parse_k8s_event(view)
        except TypeError:
            return True, None
        if event.cluster is None and (cluster := cluster_of(resource)) is not None:
            event = evolve(event, cluster=cluster)  # a k8sobjects Event: its cluster is its resource's
        owner = key if key is not None else content_key(record, event.cluster)
        return True, self.tracker.track(event, now=self.now, key=owner)

    def take_object(
        self,
        found: ObjectRecord,
        record: LogRecord,
        resource: Mapping[str, Any],
        out: Regrouped,
        cluster: str | None = None,
    ) -> None:
        """Feed a migration object (from ``cluster``) to the tracker; forward it only when so configured."""
        obj = read_migration_object(found.object, cluster=cluster)
        key: tuple[str | None, ...] = ("object", obj.uid or obj.name, obj.resource_version, found.watch_type)
        if obj.cluster is not None:
            key = (*key, obj.cluster)
        tracked = self.tracker.track_object(obj, now=self.now, key=key, listing=found.listing, deleted=found.deleted)
        namespace = obj.namespace or _text(resource.get(NAMESPACE))
        if self.options.forward_objects:
            copy = out.add(record, namespace, True)
            if tracked is not None:
                annotate(copy, tracked.event, enriched_before=False)
            self.result.enriched += 1
        else:
            self.result.objects += 1
        if tracked is not None:
            self.summarize(tracked, key, record, namespace, out)

    def summarize(
        self, tracked: Tracked, owner: Hashable, ending: LogRecord, namespace: str | None, out: Regrouped
    ) -> None:
        """Add the migration's summary ending the record that ended it (:meth:`summary`)."""
        record = self.summary(tracked, owner, lambda: ending)
        if record is not None:
            out.add(record, namespace, True)

    def summary(self, tracked: Tracked, owner: Hashable, ending: Callable[[], LogRecord]) -> LogRecord | None:
        """The migration's summary when this record is the one that ended it (again on a retry of
        that record, unless the summary was delivered), counted and its key kept; else None."""
        if not (self.options.summaries and tracked.concluded and tracked.migration is not None):
            return None
        key = summary_key(owner)
        if key in self.summarized or self.delivered(key):
            return None  # the same record twice in one request, or its summary was delivered already
        self.summarized.add(key)
        self.result.summaries += 1
        self.result.keys.append(key)
        return summary_record(tracked.migration, ending())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def event_view(
    resource: dict[str, Any],
    attributes: dict[str, Any],
    record: LogRecord,
    body: Mapping[str, Any] | None,
    kinds: frozenset[str],
) -> Mapping[str, Any] | None:
    """The record as a mapping :func:`parse_k8s_event` reads, if it is a KubeVirt event."""
    kind = resource.get(OBJECT_KIND)
    if isinstance(kind, str) and kind in kinds:  # the k8s_events receiver's shape (k8s_event_to_logdata.go)
        # Namespace (and anything else) from the record, else from the resource: a newer receiver
        # moves k8s.namespace.name to the resource, and empty fields arrive as "".
        # Only the resource attributes the reader reads: a copy of the whole resource for each
        # record cost its size times the records (a 30 KB resource, 20,000 records: ~150 MiB).
        view: dict[str, Any] = {k: resource[k] for k in COLLECTOR_KEYS if k in resource}
        view.update({k: v for k, v in attributes.items() if v != ""})
        text = record.body
        view["body"] = text.string_value if text.WhichOneof("value") == "string_value" else ""
        view["severity_text"] = record.severity_text or _TYPE_OF_SEVERITY.get(record.severity_number, "")
        view["timestamp"] = record.time_unix_nano or record.observed_time_unix_nano
        return view
    if body is None:  # the k8sobjects receiver's shape: {"type": …, "object": Event}
        return None
    event = body.get("object") if isinstance(body.get("object"), dict) else body
    if not isinstance(event, dict) or event.get("kind") != "Event":
        return None
    involved = event.get("involvedObject") or event.get("regarding")
    if not isinstance(involved, dict) or not isinstance(involved.get("kind"), str) or involved["kind"] not in kinds:
        return None
    return event


def facts_of(event: MigrationEvent) -> list[tuple[str, Any]]:
    """The record attributes ``event`` gives: those of :data:`ATTRIBUTES` whose value is known."""
    return [
        (attribute, value)
        for attribute, name in ATTRIBUTES.items()
        if (value := getattr(event, name)) not in (None, "")
    ]


def annotate(record: LogRecord, event: MigrationEvent, *, enriched_before: bool) -> None:
    """Write ``event``'s facts on ``record`` (replacing them when otelkv enriched it before)."""
    facts = facts_of(event)
    if enriched_before:  # passed through otelkv already: replace in place
        for attribute, value in facts:
            set_value(record.attributes, attribute, value)
    else:
        add_values(record.attributes, facts)
