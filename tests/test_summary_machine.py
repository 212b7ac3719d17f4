"""Exactly one summary per migration that ends, whatever reaches otelkv in whatever order.

Each round plays one migration of every VM (KubeVirt runs one migration of a VMI at a time, and a
VM's next migration comes long after the collector gave up retrying the last one's records). A
migration is told by its VMI and VMIM events (both emitter generations, success and failure),
by its VirtualMachineInstanceMigration object records, or by both; its records arrive in any
order, some twice (two collector replicas), in batches mixing VMs; a batch the target refuses is
sent again later, the way the collector retries, possibly after other batches. Only delivered
batches count, as in Loki: every migration that ended has exactly one summary there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from datetime import timedelta
from typing import Any

from hypothesis import given, note
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from otelkv.kubevirt import MigrationTracker
from otelkv.otlp.attributes import to_dict
from otelkv.otlp.enrich import EnrichOptions, enrich
from otelkv.otlp.k8s_events import to_resource_logs
from otelkv.otlp.summary import EVENT_NAME
from tests.migration_objects import object_record, vmim
from tests.scenarios import BASE, Truth, migration_events

VMS = [("ns-a", "vm1"), ("ns-b", "vm1"), ("ns-a", "web.prod-01")]
NODES = ["node01", "node02", "node03"]
ROUND = timedelta(hours=2)


@st.composite
def migration(draw: st.DrawFn, index: int, round_: int) -> list[ResourceLogs]:
    """The records of migration ``round_`` of VM ``index``, in the order they arrive."""
    ns, vm = VMS[index]
    source, target = draw(st.permutations(NODES))[:2]
    succeeded, v16 = draw(st.booleans()), draw(st.booleans())
    running = draw(st.integers(1, 300))
    name = f"kubevirt-migrate-vm-{index}{round_}xyz"
    truth = Truth(
        ns,
        vm,
        name,
        f"uid-{name}",
        source,
        target,
        f"virt-launcher-{vm}-x2bcd",
        succeeded,
        None if succeeded else "Live migration failed",
    )
    start = BASE + ROUND * round_ + timedelta(seconds=index)
    told_by = draw(st.sampled_from(["events", "objects", "both"]))
    records: list[ResourceLogs] = []
    if told_by != "objects":
        events = migration_events(truth, start=start, handler_v16=v16, vmi_uid=f"vmi-{index}", running_seconds=running)
        records += [to_resource_logs(e) for e in events]
    if told_by != "events":
        at = (start - BASE).total_seconds()
        common: dict[str, Any] = {
            "start": at,
            "name": name,
            "vm": vm,
            "ns": ns,
            "source": source,
            "target": target,
            "failure": truth.failure_reason,
        }
        terminal = "Succeeded" if succeeded else "Failed"
        records += [
            object_record(vmim("Pending", t=at, **common), "ADDED"),
            object_record(vmim("Running", t=at + 5, version=2, **common)),
            object_record(vmim(terminal, t=at + 5 + running, version=3, **common)),
        ]
    order = draw(st.permutations(records))
    twice = draw(st.lists(st.sampled_from(order), max_size=2))
    return [*order, *twice]


@st.composite
def rounds(draw: st.DrawFn) -> list[tuple[list[ResourceLogs], set[tuple[str, str]]]]:
    """Per round, every VM's migration records, interleaved across VMs, and the VMs that migrated."""
    played = []
    for round_ in range(draw(st.integers(1, 2))):
        count = draw(st.integers(1, len(VMS)))
        queues = [draw(migration(i, round_)) for i in range(count)]
        merged: list[ResourceLogs] = []
        while any(queues):
            queue = draw(st.sampled_from([q for q in queues if q]))
            merged.append(queue.pop(0))
        played.append((merged, set(VMS[:count])))
    return played


def describe(resource_logs: ResourceLogs) -> str:
    """One line a record, for the failing example."""
    record = resource_logs.scope_logs[0].log_records[0]
    attrs = to_dict(record.attributes)
    if "k8s.event.reason" in attrs:
        res = to_dict(resource_logs.resource.attributes)
        return (
            f"{res['k8s.object.kind'][-9:]} {res['k8s.object.name']} {attrs['k8s.event.reason']} "
            f"host={res['k8s.node.name']} t={record.time_unix_nano // 10**9 % 100000} {record.body.string_value}"
        )
    body = to_dict(record.body.kvlist_value.values)
    obj = body.get("object", body)
    return f"OBJECT {body.get('type')} {obj['metadata']['name']} {obj['status']['phase']}"


def summaries_of(request: ExportLogsServiceRequest) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for resource_logs in request.resource_logs:
        ns = str(to_dict(resource_logs.resource.attributes).get("k8s.namespace.name"))
        for scope in resource_logs.scope_logs:
            for record in scope.log_records:
                attrs = to_dict(record.attributes)
                if attrs.get("event.name") == EVENT_NAME:
                    assert record.event_name == EVENT_NAME
                    found.append((ns, str(attrs["kubevirt.vm.name"])))
    return found


@given(played=rounds(), data=st.data())
def test_exactly_one_summary_per_migration_that_ended(
    played: list[tuple[list[ResourceLogs], set[tuple[str, str]]]], data: st.DataObject
) -> None:
    tracker = MigrationTracker()
    delivered: set[Hashable] = set()
    for records, migrated in played:
        for line in map(describe, records):
            note(line)
        pending, left = [], records
        while left:
            size = data.draw(st.integers(1, 4), label="batch")
            pending.append(ExportLogsServiceRequest(resource_logs=left[:size]))
            left = left[size:]
        got: Counter[tuple[str, str]] = Counter()
        attempts = 0
        while pending:
            request = pending.pop(0)
            result = enrich(request, tracker, EnrichOptions(), delivered.__contains__)
            attempts += 1
            if attempts < 40 and data.draw(st.booleans(), label="refused"):
                pending.insert(data.draw(st.integers(0, len(pending)), label="retried at"), request)
                continue
            delivered.update(result.keys)
            got.update(summaries_of(result.request))
        assert got == Counter(migrated)
