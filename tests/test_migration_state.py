"""The tracker's migrations survive a restart of otelkv where ``delivery.store_path`` is set."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from otelkv.delivery.tracker_state import PersistentTracker, state_path
from otelkv.kubevirt import MigrationTracker
from otelkv.otlp.k8s_events import to_resource_logs
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink
from tests.migration_objects import object_record, vmim
from tests.scenarios import BASE, VMI, VMIM, event
from tests.test_kubevirt_tracker import created, migrated, migrating, succeeded


def vmi(reason: str, message: str, host: str, t: float) -> ResourceLogs:
    return to_resource_logs(
        event(
            kind=VMI,
            name="fedora-vm",
            namespace="vms",
            uid="vmi-uid",
            reason=reason,
            message=message,
            type_="Normal",
            at=BASE + timedelta(seconds=t),
            component="virt-handler",
            host=host,
        )
    )


def started_migration() -> list[ResourceLogs]:
    create = event(
        kind=VMIM,
        name="mig-1",
        namespace="vms",
        uid="uid-mig-1",
        reason="SuccessfulCreate",
        message="Created migration target pod virt-launcher-fedora-vm-x2bcd",
        type_="Normal",
        at=BASE,
        component="virtualmachine-controller",
    )
    return [to_resource_logs(create), vmi("Migrating", "VirtualMachineInstance is migrating.", "node01", 3)]


def serve_once(sink: LokiSink, store: Path, *records: ResourceLogs) -> None:
    service = Service(make_config(sink.url, **{"delivery.store_path": str(store), "enrich.summaries": True}))
    service.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
            LogsServiceStub(channel).Export(ExportLogsServiceRequest(resource_logs=list(records)), timeout=10)
    finally:
        service.stop(2)


def test_a_restart_mid_migration_keeps_the_source_node_and_the_start(sink: LokiSink, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    serve_once(sink, store, *started_migration())
    assert state_path(str(store)).is_file()
    # KubeVirt >= 1.6: the target's handler says it ended; nothing in it names the source.
    serve_once(sink, store, vmi("Migrated", "The VirtualMachineInstance migrated to node node02.", "node02", 35))
    done = next(e for e in sink.entries if e.line.startswith("The VirtualMachineInstance migrated"))
    assert done.metadata["kubevirt_migration_source_node"] == "node01"
    assert done.metadata["kubevirt_migration_name"] == "mig-1"
    assert done.metadata["kubevirt_migration_duration_seconds"] == "35"
    summary = next(e for e in sink.entries if e.metadata.get("event_name") == "kubevirt.migration.summary")
    assert summary.line == "fedora-vm migrated node01 → node02 in 35 s"


def test_without_a_store_a_restart_forgets(sink: LokiSink) -> None:
    for records in (
        started_migration(),
        [vmi("Migrated", "The VirtualMachineInstance migrated to node node02.", "node02", 35)],
    ):
        service = Service(make_config(sink.url))
        service.start()
        with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
            LogsServiceStub(channel).Export(ExportLogsServiceRequest(resource_logs=records), timeout=10)
        service.stop(2)
    assert "kubevirt_migration_source_node" not in sink.entries[-1].metadata


def test_saved_while_records_come_in_and_restored_whole(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    tracker = PersistentTracker(path, interval=0)
    tracker.observe(created(0, "mig-1"))
    tracker.observe(migrating("node01", 3))  # saved at once (interval 0): a SIGKILL now loses nothing
    again = PersistentTracker(path)
    assert again.restored == 1
    done = again.observe(succeeded(40, "mig-1"))
    assert (done.vm_name, done.source_node, done.duration_seconds) == ("fedora-vm", "node01", 40)
    assert again.migrations() == tuple(m for m in again.migrations())
    assert not path.with_name(path.name + ".tmp").exists()


def test_the_file_is_bounded_by_max_entries(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    tracker = PersistentTracker(path, interval=0, max_entries=3)
    for i in range(10):
        tracker.observe(migrating("node01", i, vm=f"vm-{i}"))
    saved = json.loads(path.read_text())["migrations"]
    assert [m["vm"] for m in saved] == ["vm-7", "vm-8", "vm-9"]


DAMAGED = [
    b"{not json",
    b'{"version": 9}',
    b'{"version": 1, "migrations": [{"vm": 3}]}',
    b'{"version": 1, "migrations": [{"started": "yesterday"}]}',
    b"[" * 100_000,
]


@pytest.mark.parametrize("content", DAMAGED)
def test_a_damaged_file_is_logged_and_ignored(tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="otelkv.delivery.tracker_state"):
        tracker = PersistentTracker(path)
    assert tracker.restored == 0 and len(tracker) == 0
    assert f"ignoring the saved migrations in {path}" in caplog.text
    tracker.observe(migrated("node01", "node02", 5))
    assert tracker.save() and PersistentTracker(path).restored == 1


def test_an_unwritable_place_is_logged_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tracker = PersistentTracker(tmp_path / "missing-dir" / "m.json", interval=0)
    with caplog.at_level(logging.WARNING, logger="otelkv.delivery.tracker_state"):
        tracker.observe(migrating("node01", 1))
    assert "saving the migrations" in caplog.text and len(tracker) == 1


def test_state_round_trip_keeps_every_fact() -> None:
    tracker = MigrationTracker()
    for e in (created(0, "mig-1"), migrating("node01", 3), migrated("node01", "node02", 30)):
        tracker.observe(e)
    copy = MigrationTracker()
    copy.restore_state(json.loads(json.dumps(tracker.export_state())))
    assert copy.migrations() == tracker.migrations()
    with pytest.raises(ValueError, match="version"):
        copy.restore_state({"version": 2})


def test_a_restart_keeps_what_the_migration_object_stated(sink: LokiSink, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    serve_once(sink, store, object_record(vmim("Running", t=5)))  # read, not forwarded
    assert sink.entries == []
    serve_once(sink, store, vmi("Migrated", "The VirtualMachineInstance migrated to node node02.", "node02", 30))
    done = next(e for e in sink.entries if e.line.startswith("The VirtualMachineInstance migrated"))
    assert done.metadata["kubevirt_migration_source_node"] == "node01"  # only the object said so
    assert done.metadata["kubevirt_migration_duration_seconds"] == "30"  # from KubeVirt's Pending time


def test_the_end_of_a_burst_is_saved_without_waiting_for_the_next_record(tmp_path: Path) -> None:
    # Found by probing: the last changes of a burst were written only when the next KubeVirt
    # record came, so a SIGKILL after a quiet spell lost them. The saver thread writes them.
    path = tmp_path / "m.json"
    tracker = PersistentTracker(path, interval=0.2)
    tracker.start_saver()
    try:
        tracker.observe(created(0, "mig-1"))
        tracker.observe(migrating("node01", 3))  # within the interval, and no record follows it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (path.exists() and "node01" in path.read_text()):
            time.sleep(0.05)
        assert "node01" in path.read_text()  # as a SIGKILL now would find it
    finally:
        tracker.stop_saver()
        tracker.stop_saver()  # safe twice
