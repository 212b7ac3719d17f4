"""Many clusters, one Loki (issue 21 §3): the resource attribute ``k8s.cluster.name`` is part of
every tracker, duplicate-filter and saved-state key, and summaries carry it. Two clusters with the
same namespace, VM, migration names — and so the same event uids — are two migrations."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs

from otelkv.kubevirt import MigrationTracker, parse_k8s_event, read_migration_object
from otelkv.kubevirt.event_builders import evolve
from otelkv.otlp import native
from otelkv.otlp.k8s_events import to_resource_logs
from otelkv.otlp.record_keys import content_key, key_of
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import Entry, LokiSink
from tests.migration_objects import object_record, vmim
from tests.scenarios import BASE, VMI, VMIM, Truth, event, migration_events

SUMMARY = "kubevirt.migration.summary"
TRUTH = Truth(
    "vms",
    "fedora-vm",
    "kubevirt-migrate-vm-x7k2p",
    "uid-mig",
    "node01",
    "node02",
    "virt-launcher-fedora-vm-9xbzq",
    True,
    None,
)


def in_cluster(resource_logs: ResourceLogs, cluster: str) -> ResourceLogs:
    """The record as a collector of ``cluster`` sends it (its resource processor sets the name)."""
    out = ResourceLogs()
    out.CopyFrom(resource_logs)
    out.resource.attributes.add(key="k8s.cluster.name").value.string_value = cluster
    return out


def both_clusters(running_a: int, running_b: int) -> list[ResourceLogs]:
    """The same migration (same names, same event uids) in clusters a and b, interleaved."""
    a = [
        to_resource_logs(e)
        for e in migration_events(TRUTH, start=BASE, handler_v16=False, vmi_uid="v", running_seconds=running_a)
    ]
    b = [
        to_resource_logs(e)
        for e in migration_events(TRUTH, start=BASE, handler_v16=False, vmi_uid="v", running_seconds=running_b)
    ]
    return [r for pair in zip(a, b, strict=True) for r in (in_cluster(pair[0], "east"), in_cluster(pair[1], "west"))]


def summaries(sink: LokiSink) -> list[Entry]:
    return [e for e in sink.entries if e.metadata.get("event_name") == SUMMARY]


def export(port: int, records: list[ResourceLogs], batch: int = 1) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = LogsServiceStub(channel)
        for start in range(0, len(records), batch):
            stub.Export(ExportLogsServiceRequest(resource_logs=records[start : start + batch]), timeout=10)


def check_two(sink: LokiSink) -> None:
    found = sorted((s.labels.get("k8s_cluster_name"), s.line) for s in summaries(sink))
    assert found == [
        ("east", "fedora-vm migrated node01 → node02 in 24 s"),
        ("west", "fedora-vm migrated node01 → node02 in 44 s"),
    ]
    for s in summaries(sink):
        assert s.metadata["kubevirt_migration_name"] == TRUTH.migration


def test_two_clusters_same_names_two_migrations_two_summaries(core: native.Choice, sink: LokiSink) -> None:
    running = Service(make_config(sink.url, **{"enrich.summaries": True}))
    running.start()
    try:
        export(running.grpc_port, both_clusters(20, 40), batch=2)  # one request holds both clusters' records
    finally:
        running.stop(2)
    check_two(sink)
    events = [e for e in sink.entries if e not in summaries(sink)]
    assert len(events) == 14  # none dropped as a duplicate of the other cluster's
    assert {e.labels["k8s_cluster_name"] for e in events} == {"east", "west"}


def test_the_same_after_a_restart_with_a_store(sink: LokiSink, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    records = both_clusters(20, 40)
    for part in (records[:10], records[10:]):  # each cluster's start before the restart, its end after it
        running = Service(make_config(sink.url, **{"delivery.store_path": str(store), "enrich.summaries": True}))
        running.start()
        try:
            export(running.grpc_port, part)
        finally:
            running.stop(2)
    check_two(sink)


def test_objects_of_two_clusters_are_two_migrations_and_their_summaries_say_which(sink: LokiSink) -> None:
    running = Service(make_config(sink.url, **{"enrich.summaries": True}))
    running.start()
    try:
        export(
            running.grpc_port,
            [
                in_cluster(object_record(vmim("Running", t=5)), "east"),
                in_cluster(object_record(vmim("Running", t=5, source="node03", target="node04")), "west"),
                in_cluster(object_record(vmim("Succeeded", t=30, version=2)), "east"),
                in_cluster(object_record(vmim("Succeeded", t=50, source="node03", target="node04", version=2)), "west"),
            ],
        )
    finally:
        running.stop(2)
    found = sorted((s.labels.get("k8s_cluster_name"), s.line) for s in summaries(sink))
    assert found == [
        ("east", "fedora-vm migrated node01 → node02 in 30 s"),
        ("west", "fedora-vm migrated node03 → node04 in 50 s"),
    ]


# -- the keys -------------------------------------------------------------------------------------


def test_keys_hold_the_cluster_when_there_is_one() -> None:
    attributes = {"k8s.event.uid": "u-1", "k8s.event.count": 2}
    assert key_of(attributes) == ("u-1", 2)  # as before: a window saved without clusters still matches
    assert key_of(attributes, "east") == ("u-1", 2, "east") != key_of(attributes, "west")
    record = LogRecord()
    record.body.string_value = "x"
    assert content_key(record, "east") != content_key(record, "west") != content_key(record)
    key = key_of(attributes, "east")
    assert isinstance(key, tuple) and all(isinstance(part, str | int) for part in key)  # the window saves it


def test_the_tracker_keeps_clusters_apart_and_saves_them() -> None:
    tracker = MigrationTracker()
    for cluster, target in (("east", "node02"), ("west", "node05")):
        start = parse_k8s_event(
            event(
                kind=VMIM,
                name=TRUTH.migration,
                namespace="vms",
                uid=f"uid-{TRUTH.migration}",
                reason="SuccessfulCreate",
                message="Created migration target pod virt-launcher-fedora-vm-9xbzq",
                type_="Normal",
                at=BASE,
                component="virtualmachine-controller",
            )
        )
        tracker.observe(evolve(start, cluster=cluster))
        moved = parse_k8s_event(
            event(
                kind=VMI,
                name="fedora-vm",
                namespace="vms",
                uid="v",
                reason="Migrated",
                message=f"The VirtualMachineInstance migrated to node {target}.",
                type_="Normal",
                at=BASE + timedelta(seconds=9),
                component="virt-handler",
                host="node01",
            )
        )
        tracker.observe(evolve(moved, cluster=cluster))
    obj = read_migration_object(vmim("Succeeded", t=9, name=TRUTH.migration), cluster="east")
    assert obj.cluster == "east"
    tracker.track_object(obj)
    again = MigrationTracker()
    again.restore_state(json.loads(json.dumps(tracker.export_state())))
    found = sorted((m.cluster, m.migration_name, m.target_node, m.phase) for m in again.migrations())
    assert found == [
        ("east", TRUTH.migration, "node02", "Succeeded"),
        ("west", TRUTH.migration, "node05", "Succeeded"),
    ]


def test_the_collector_shape_reads_the_cluster() -> None:
    view = {"k8s.event.reason": "Started", "k8s.object.kind": VMI, "k8s.cluster.name": "east", "body": ""}
    assert parse_k8s_event(view).cluster == "east"
