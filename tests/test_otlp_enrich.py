"""enrich(): what it changes in an OTLP request, and everything it must leave byte-for-byte."""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs

from otelkv.commands.event_file import in_time_order
from otelkv.kubevirt import MigrationTracker
from otelkv.otlp.attributes import to_dict
from otelkv.otlp.enrich import ATTRIBUTES, EnrichOptions, enrich
from otelkv.otlp.k8s_events import SCOPE_NAME, to_resource_logs
from tests.conftest import EXAMPLE


def example_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = in_time_order(json.loads(EXAMPLE.read_text())["items"])
    return events


def request_of(events: list[dict[str, Any]]) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(resource_logs=[to_resource_logs(e) for e in events])


def run(
    request: ExportLogsServiceRequest, options: EnrichOptions | None = None, delivered: set[Hashable] | None = None
) -> Any:
    return enrich(
        request, MigrationTracker(), options or EnrichOptions(summaries=False), (delivered or set()).__contains__
    )


def records(request: ExportLogsServiceRequest) -> list[tuple[dict[str, Any], LogRecord]]:
    return [
        (to_dict(r.resource.attributes), rec)
        for r in request.resource_logs
        for s in r.scope_logs
        for rec in s.log_records
    ]


def test_kubevirt_records_gain_attributes_and_keep_everything_else() -> None:
    events = example_events()
    original = request_of(events)
    result = run(original)
    assert (result.received, result.enriched, result.passed) == (len(events), len(events) - 2, 2)
    out = records(result.request)
    assert len(out) == len(events)
    for (resource, record), source in zip(out, records(original), strict=True):
        src_resource, src_record = source
        if src_resource["k8s.object.kind"] in ("Pod", "Node"):
            assert record.SerializeToString() == src_record.SerializeToString()
            assert resource == src_resource
            continue
        # The received attributes come first, unchanged and in order; only kubevirt.* follow.
        n = len(src_record.attributes)
        assert list(record.attributes)[:n] == list(src_record.attributes)
        added = [kv.key for kv in record.attributes][n:]
        assert added and set(added) <= set(ATTRIBUTES)
        assert all(kv.value.string_value != "" for kv in record.attributes[n:] if kv.value.HasField("string_value"))
        for name in (
            "body",
            "time_unix_nano",
            "observed_time_unix_nano",
            "severity_number",
            "severity_text",
            "flags",
            "trace_id",
            "span_id",
        ):
            assert getattr(record, name) == getattr(src_record, name), name
        assert resource == {
            **src_resource,
            "service.name": "kubevirt-events",
            "k8s.namespace.name": to_dict(src_record.attributes)["k8s.namespace.name"],
        }


def test_the_terminal_record_carries_the_whole_story() -> None:
    result = run(request_of(example_events()))
    terminal = [
        to_dict(rec.attributes)
        for _, rec in records(result.request)
        if to_dict(rec.attributes).get("kubevirt.migration.phase") == "Failed"
        and to_dict(rec.attributes).get("kubevirt.vm.name") == "rhel9-db.prod"
    ]
    assert len(terminal) == 2
    for attrs in terminal:
        assert attrs["kubevirt.migration.source_node"] == "worker-a.lab.example.com"
        assert attrs["kubevirt.migration.target_node"] == "worker-b.lab.example.com"
        assert attrs["kubevirt.migration.name"] == "kubevirt-evacuation-4tq8z"
        assert attrs["kubevirt.migration.failure_reason"].startswith("Live migration failed")
    assert sorted(a["kubevirt.migration.duration_seconds"] for a in terminal) == [16.0, 16.0]  # one end: the earliest


def test_records_of_other_namespaces_get_resources_of_their_own() -> None:
    events = example_events()
    vmis = [e for e in events if e["involvedObject"]["kind"] == "VirtualMachineInstance"]
    a = next(e for e in vmis if e["metadata"]["namespace"] == "tenant-a")
    b = next(e for e in vmis if e["metadata"]["namespace"] == "virtualmachines")
    # One ResourceLogs holding records of two namespaces (a processor could group them): split.
    merged = to_resource_logs(a)
    merged.scope_logs[0].log_records.append(to_resource_logs(b).scope_logs[0].log_records[0])
    result = run(ExportLogsServiceRequest(resource_logs=[merged]))
    resources = [to_dict(r.resource.attributes) for r in result.request.resource_logs]
    assert [r.get("k8s.namespace.name") for r in resources] == ["tenant-a", "virtualmachines"]
    assert all(len(r.scope_logs) == 1 and len(r.scope_logs[0].log_records) == 1 for r in result.request.resource_logs)
    assert all(r.scope_logs[0].scope.name == SCOPE_NAME for r in result.request.resource_logs)


def test_kubevirt_and_other_records_of_one_resource_are_split() -> None:
    # The k8sobjects receiver's resource is only the namespace: KubeVirt and other events share it.
    events = example_events()
    vmi = next(e for e in events if e["reason"] == "Migrating" and e["metadata"]["namespace"] == "virtualmachines")
    pod = dict(next(e for e in events if e["involvedObject"]["kind"] == "Pod"))
    pod["involvedObject"] = {**pod["involvedObject"], "namespace": "virtualmachines"}
    resource_logs = ResourceLogs()
    resource_logs.resource.attributes.add(key="k8s.namespace.name").value.string_value = "virtualmachines"
    scope = resource_logs.scope_logs.add()
    scope.scope.name = "otelcol/k8sobjectsreceiver"
    for event in (pod, vmi, pod):
        scope.log_records.append(_watch_record(event))
    pod_bytes = scope.log_records[0].SerializeToString()
    result = run(ExportLogsServiceRequest(resource_logs=[resource_logs]))
    first, second = result.request.resource_logs
    assert to_dict(first.resource.attributes) == {"k8s.namespace.name": "virtualmachines"}
    assert [r.SerializeToString() for r in first.scope_logs[0].log_records] == [pod_bytes, pod_bytes]
    assert to_dict(second.resource.attributes)["service.name"] == "kubevirt-events"
    assert len(second.scope_logs[0].log_records) == 1
    assert first.scope_logs[0].scope.name == second.scope_logs[0].scope.name == "otelcol/k8sobjectsreceiver"


def _watch_record(event: dict[str, Any]) -> LogRecord:
    record = LogRecord(
        body=AnyValue(
            kvlist_value=KeyValueList(
                values=[
                    KeyValue(key="type", value=AnyValue(string_value="ADDED")),
                    KeyValue(key="object", value=_any(event)),
                ]
            )
        )
    )
    record.attributes.add(key="event.domain").value.string_value = "k8s"
    return record


def test_others_dropped_when_configured() -> None:
    result = run(request_of(example_events()), EnrichOptions(drop_others=True))
    assert result.dropped_others == 2 and result.passed == 0
    assert all(res["service.name"] == "kubevirt-events" for res, _ in records(result.request))


def test_kinds_are_configurable() -> None:
    result = run(request_of(example_events()), EnrichOptions(kinds=frozenset({"VirtualMachineInstanceMigration"})))
    kinds = {res["k8s.object.kind"] for res, _ in records(result.request) if "service.name" in res}
    assert kinds == {"VirtualMachineInstanceMigration"}


def test_exact_duplicates_dropped_within_a_request_and_after_delivery() -> None:
    events = example_events()[:5]
    doubled = request_of(events + events)
    result = run(doubled)
    assert result.duplicates == 5 and result.forwarded == 5 and len(result.keys) == 5
    again = run(request_of(events), delivered=set(result.keys))
    assert again.duplicates == 5 and again.forwarded == 0
    # A count bump of the same event is a new record, not a duplicate.
    bumped = json.loads(json.dumps(events[0]))
    bumped["count"] += 1
    assert run(request_of([bumped]), delivered=set(result.keys)).forwarded == 1


def test_k8sobjects_receiver_shape() -> None:
    event = next(e for e in example_events() if e["reason"] == "Migrating")
    resource_logs = ResourceLogs()
    resource_logs.resource.attributes.add(key="k8s.namespace.name").value.string_value = event["metadata"]["namespace"]
    resource_logs.scope_logs.add().log_records.append(_watch_record(event))
    result = run(ExportLogsServiceRequest(resource_logs=[resource_logs]))
    [(resource, out)] = records(result.request)
    attrs = to_dict(out.attributes)
    assert attrs["kubevirt.vm.name"] == event["involvedObject"]["name"]
    assert attrs["kubevirt.migration.phase"] == "Running"
    assert attrs["kubevirt.migration.source_node"] == event["source"]["host"]
    assert resource == {"k8s.namespace.name": event["metadata"]["namespace"], "service.name": "kubevirt-events"}


def test_a_record_with_a_field_of_a_wrong_type_passes_unenriched() -> None:
    request = request_of(example_events()[:1])
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    reason = next(kv for kv in record.attributes if kv.key == "k8s.event.reason")
    reason.value.int_value = 7
    before = record.SerializeToString()
    result = run(request, EnrichOptions(drop_others=True))
    assert result.unreadable == 1 and result.passed == 1
    assert records(result.request)[0][1].SerializeToString() == before


def _any(value: Any) -> AnyValue:
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=_any(v)) for k, v in value.items()]))
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if value is None:
        return AnyValue()
    return AnyValue(string_value=str(value))


def test_a_summary_comes_again_on_a_retry_until_delivered_even_without_an_event_uid() -> None:
    events = [
        e
        for e in example_events()
        if e["metadata"]["namespace"] == "virtualmachines"
        and e["involvedObject"]["name"] in ("fedora-vm", "kubevirt-migrate-vm-x7k2p")
    ]
    request = request_of(events)
    for resource_logs in request.resource_logs:  # a receiver that sends no k8s.event.uid
        record = resource_logs.scope_logs[0].log_records[0]
        kept = [kv for kv in record.attributes if kv.key != "k8s.event.uid"]
        del record.attributes[:]
        record.attributes.extend(kept)
    tracker, delivered = MigrationTracker(), set[Hashable]()

    def summaries() -> tuple[list[str], list[Hashable]]:
        result = enrich(request, tracker, EnrichOptions(), delivered.__contains__)
        found = [
            rec.body.string_value
            for _, rec in records(result.request)
            if to_dict(rec.attributes).get("event.name") == "kubevirt.migration.summary"
        ]
        return found, result.keys

    first, _ = summaries()
    again, keys = summaries()  # the target refused the first: the collector sends it again
    assert len(first) == 1 and again == first
    delivered.update(keys)
    last, _ = summaries()  # delivered, then sent once more (at-least-once): no second summary
    assert last == []
