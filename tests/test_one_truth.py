"""One truth per migration (issue 21 §2): the summary ``otelkv serve`` writes and the table of
``otelkv migrations`` agree on every migration's start, end and duration (KubeVirt's own times
first, else the earliest terminal event: the handler's own); a migration object without
``migrationState`` gives one summary, whatever the order its records arrive in."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.commands.event_file import read_event_file
from otelkv.commands.migrations_table import track
from otelkv.commands.replay import replay
from otelkv.kubevirt import MigrationTracker, read_migration_object
from otelkv.server import Service
from tests.conftest import ROOT, make_config
from tests.loki_sink import Entry, LokiSink
from tests.migration_objects import object_record, vmi_migrated, vmim, vmim_succeeded
from tests.scenarios import BASE
from tests.test_kubevirt_tracker import created, migrated, migrating, prepared, succeeded

EXAMPLE = ROOT / "examples" / "kubevirt-events.json"
SUMMARY = "kubevirt.migration.summary"


@pytest.fixture
def serve(sink: LokiSink) -> Iterator[Service]:
    running = Service(make_config(sink.url, **{"enrich.summaries": True}))
    running.start()
    try:
        yield running
    finally:
        running.stop(2)


def summaries(sink: LokiSink) -> list[Entry]:
    return [e for e in sink.entries if e.metadata.get("event_name") == SUMMARY]


def test_serve_and_the_table_agree_on_every_migration(sink: LokiSink, serve: Service) -> None:
    events = read_event_file(str(EXAMPLE))
    replay(events, f"127.0.0.1:{serve.grpc_port}")
    written = {
        (s.labels["k8s_namespace_name"], s.metadata["kubevirt_vm_name"]): (
            datetime.fromisoformat(s.metadata["kubevirt_migration_start_time"]),
            datetime.fromisoformat(s.metadata["kubevirt_migration_end_time"]),
            float(s.metadata["kubevirt_migration_duration_seconds"]),
        )
        for s in summaries(sink)
    }
    table = {(m.namespace, m.vm_name): (m.started, m.ended, m.duration_seconds) for m in track(events)}
    assert len(written) == len(summaries(sink)) == 4  # one summary a migration
    assert written == table
    lines = sorted(s.line for s in summaries(sink))
    assert "fedora-vm migrated node01 → node02 in 31 s" in lines  # README's example
    assert table[("tenant-a", "web-02")][2] == 156  # 2m36s: the handler's word at 09:08:36


def test_the_earliest_terminal_event_ends_it_whatever_arrives_first() -> None:
    """The controller's word a second after the handler's, arriving first: the handler's still ends it
    in the table (the summary was written at the first word, which is all serve had then)."""
    tracker = MigrationTracker()
    for e in (created(0), migrating("node01", 3), succeeded(32), migrated("node01", "node02", 31)):
        tracker.observe(e)
    [m] = tracker.migrations()
    assert (m.ended, m.duration_seconds) == (BASE + timedelta(seconds=31), 31)


# -- an object without migrationState (KubeVirt < v0.59, e.g. Harvester 1.2) -------------------


def old_object() -> dict[str, Any]:
    """The object as an old KubeVirt leaves it: phase Succeeded, no transitions, no migrationState."""
    obj = vmim("Succeeded", t=30, modern=False)
    obj["status"].pop("migrationState", None)
    return obj


ORDERS = {
    "object first": ("object", "vmi", "vmim"),
    "object between": ("vmi", "object", "vmim"),
    "object last": ("vmi", "vmim", "object"),
}


@pytest.mark.parametrize("order", list(ORDERS.values()), ids=list(ORDERS))
def test_an_object_without_migration_state_gives_one_summary_with_the_target(
    sink: LokiSink, serve: Service, order: tuple[str, ...]
) -> None:
    records = {
        "object": object_record(old_object()),
        "vmi": vmi_migrated(30),
        "vmim": vmim_succeeded(30, "kubevirt-migrate-vm-q7x2p"),
    }
    with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
        stub = LogsServiceStub(channel)
        for name in order:
            stub.Export(ExportLogsServiceRequest(resource_logs=[records[name]]), timeout=10)
    [summary] = summaries(sink)
    assert summary.metadata["kubevirt_migration_target_node"] == "node02"  # from the VMI's event
    assert summary.metadata["kubevirt_vm_name"] == "fedora-vm"
    assert summary.line.startswith("fedora-vm migrated node01 → node02")  # the source: the handler's host
    if order[0] == "object":  # the object named the migration, and its creation the start, before the VMI spoke
        assert summary.line == "fedora-vm migrated node01 → node02 in 30 s"
        [vmi] = [e for e in sink.entries if e.line.startswith("The VirtualMachineInstance migrated")]
        assert vmi.metadata["kubevirt_migration_name"] == "kubevirt-migrate-vm-q7x2p"
        assert summary.metadata["kubevirt_migration_name"] == "kubevirt-migrate-vm-q7x2p"


@pytest.mark.parametrize("order", list(itertools.permutations(("object", "vmi", "vmim"))))
def test_the_tracker_concludes_once_in_any_order(order: tuple[str, ...]) -> None:
    tracker = MigrationTracker()
    concluded = 0
    for name in order:
        if name == "object":
            tracked = tracker.track_object(read_migration_object(old_object()), key=name)
            assert tracked is not None
        elif name == "vmi":
            tracked = tracker.track(migrated("node01", "node02", 30), key=name)
        else:
            tracked = tracker.track(succeeded(30, "kubevirt-migrate-vm-q7x2p"), key=name)
        concluded += tracked.concluded
    assert concluded == 1
    [m] = tracker.migrations()
    assert (m.migration_name, m.target_node, m.phase) == ("kubevirt-migrate-vm-q7x2p", "node02", "Succeeded")


def test_a_new_migration_does_not_join_an_old_object_that_never_said_when_it_ended() -> None:
    """The old object's end was never heard from events; the VM's next migration starts clean."""
    tracker = MigrationTracker()
    tracker.track_object(read_migration_object(old_object()))
    nxt = tracker.observe(prepared("node03", 600))
    assert (nxt.migration_name, nxt.target_node) == (None, "node03")
    assert len(tracker) == 2
