"""parse_k8s_event: the same facts from every shape a Kubernetes Event reaches otelkv in."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from otelkv.kubevirt import parse_k8s_event

DATA = Path(__file__).parent / "data"
WHEN = datetime(2026, 11, 20, 9, 0, 4, tzinfo=UTC)

CORE_V1: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"name": "fedora-vm.18e9b44f7e67c84d", "namespace": "virtualmachines"},
    "involvedObject": {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "name": "fedora-vm",
        "namespace": "virtualmachines",
        "uid": "vmi-uid-1",
    },
    "reason": "Migrating",
    "message": "VirtualMachineInstance is migrating.",
    "source": {"component": "virt-handler", "host": "node01"},
    "firstTimestamp": "2026-11-20T08:59:00Z",
    "lastTimestamp": "2026-11-20T09:00:04Z",
    "count": 4,
    "type": "Normal",
    "eventTime": None,
    "reportingComponent": "virt-handler",
    "reportingInstance": "node01",
}

EVENTS_V1: dict[str, Any] = {
    "apiVersion": "events.k8s.io/v1",
    "kind": "Event",
    "metadata": {"name": "fedora-vm.18e9b44f7e67c84d", "namespace": "virtualmachines"},
    "regarding": {
        "kind": "VirtualMachineInstance",
        "name": "fedora-vm",
        "namespace": "virtualmachines",
        "uid": "vmi-uid-1",
    },
    "reason": "Migrating",
    "note": "VirtualMachineInstance is migrating.",
    "type": "Normal",
    "eventTime": None,
    "deprecatedFirstTimestamp": "2026-11-20T08:59:00Z",
    "deprecatedLastTimestamp": "2026-11-20T09:00:04Z",
    "deprecatedCount": 4,
    "deprecatedSource": {"component": "virt-handler", "host": "node01"},
    "reportingController": "virt-handler",
    "reportingInstance": "node01",
}

# FACTS §1: resource and record attributes of the k8s_events receiver, merged, plus the record's
# body, severity_text and timestamp. Empty fields arrive as empty strings.
COLLECTOR: dict[str, Any] = {
    "k8s.node.name": "node01",
    "k8s.object.kind": "VirtualMachineInstance",
    "k8s.object.name": "fedora-vm",
    "k8s.object.uid": "vmi-uid-1",
    "k8s.object.fieldpath": "",
    "k8s.object.api_version": "kubevirt.io/v1",
    "k8s.object.resource_version": "81723",
    "k8s.event.reason": "Migrating",
    "k8s.event.action": "",
    "k8s.event.start_time": "2026-11-20 08:59:00 +0000 UTC",
    "k8s.event.name": "fedora-vm.18e9b44f7e67c84d",
    "k8s.event.uid": "2c0f9a40-6d0e-4b8e-9f0a-1f2e3d4c5b6a",
    "k8s.namespace.name": "virtualmachines",
    "k8s.event.count": 4,
    "body": "VirtualMachineInstance is migrating.",
    "severity_text": "Normal",
    "timestamp": int(WHEN.timestamp() * 1_000_000_000),
}


@pytest.mark.parametrize(
    "obj",
    [CORE_V1, EVENTS_V1, COLLECTOR, {"type": "MODIFIED", "object": EVENTS_V1}, {"type": "ADDED", "object": CORE_V1}],
    ids=["core-v1", "events-v1", "collector", "watch-events-v1", "watch-core-v1"],
)
def test_every_shape_gives_the_same_facts(obj: dict[str, Any]) -> None:
    e = parse_k8s_event(obj)
    assert (e.reason, e.event_type, e.object_kind, e.vm_name, e.namespace) == (
        "Migrating",
        "Normal",
        "VirtualMachineInstance",
        "fedora-vm",
        "virtualmachines",
    )
    assert (e.phase, e.source_node, e.host, e.object_uid, e.count) == ("Running", "node01", "node01", "vmi-uid-1", 4)
    assert e.timestamp == WHEN


def test_the_latest_time_wins_and_series_counts() -> None:
    obj = copy.deepcopy(EVENTS_V1)
    obj["series"] = {"count": 9, "lastObservedTime": "2026-11-20T09:10:00.123456Z"}
    e = parse_k8s_event(obj)
    assert e.count == 9 and e.timestamp == datetime(2026, 11, 20, 9, 10, 0, 123456, tzinfo=UTC)
    obj = copy.deepcopy(CORE_V1)
    del obj["lastTimestamp"]
    obj["eventTime"] = "2026-11-20T09:00:04.000001Z"
    assert parse_k8s_event(obj).timestamp == WHEN.replace(microsecond=1)


def test_collector_time_falls_back_to_the_go_start_time() -> None:
    obj = {**COLLECTOR, "timestamp": 0}
    assert parse_k8s_event(obj).timestamp == datetime(2026, 11, 20, 8, 59, tzinfo=UTC)
    obj = {**COLLECTOR, "timestamp": "2026-11-20T09:00:04Z"}
    assert parse_k8s_event(obj).timestamp == WHEN
    obj = {**COLLECTOR, "timestamp": WHEN}
    assert parse_k8s_event(obj).timestamp == WHEN


def test_controller_events_have_no_host_and_old_collectors_no_component() -> None:
    obj = {
        **COLLECTOR,
        "k8s.node.name": "",
        "k8s.object.kind": "VirtualMachineInstanceMigration",
        "k8s.object.name": "kubevirt-migrate-vm-x7k2p",
        "k8s.event.reason": "SuccessfulCreate",
        "body": "Created migration target pod virt-launcher-fedora-vm-9xbzq",
    }
    e = parse_k8s_event(obj)
    assert e.host is None and e.component is None
    assert (e.vm_name, e.migration_name, e.migration_uid) == ("fedora-vm", "kubevirt-migrate-vm-x7k2p", "vmi-uid-1")


def test_a_minimal_event_reads() -> None:
    e = parse_k8s_event({"reason": "Migrating"})
    assert e.message == "" and e.phase == "Running" and e.vm_name is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"involvedObject": "fedora-vm"}, "involvedObject"),
        ({"involvedObject": {"kind": 7}}, "involvedObject.kind"),
        ({"source": {"host": ["node01"]}}, "source.host"),
        ({"message": None, "reason": 5}, "reason"),
        ({"count": "4"}, "count"),
        ({"lastTimestamp": 1700000000}, "lastTimestamp"),
    ],
)
def test_wrong_types_name_the_field(change: dict[str, Any], named: str) -> None:
    with pytest.raises(TypeError, match=named.replace(".", r"\.")):
        parse_k8s_event({**CORE_V1, **change})


def test_not_a_mapping() -> None:
    with pytest.raises(TypeError, match="obj must be a mapping"):
        parse_k8s_event([CORE_V1])  # type: ignore[arg-type]


def test_fixtures_are_what_kubectl_prints() -> None:
    for path in sorted(DATA.glob("migration-*.json")):
        listing = json.loads(path.read_text())
        assert listing["kind"] == "List" and listing["items"]
        names = [item["metadata"]["name"] for item in listing["items"]]
        assert names == sorted(names), f"{path.name}: the API lists events by name"
        assert all(parse_k8s_event(item).namespace for item in listing["items"])
