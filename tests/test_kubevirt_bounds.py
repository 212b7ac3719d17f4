"""What ``otelkv.kubevirt`` keeps is bounded in bytes, whatever events arrive (issue 18 items 4 and 7).

The findings: failed-migration events with a new uid, a 20 KB VM name and a 20 KB failure reason,
60 a request, grew the tracker's saved state to 404 MB after 178 requests (VmHWM 1.41 GiB); and
1,800 distinct 40 KB failure messages held 237 MiB in the parser's message cache.
"""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from otelkv.kubevirt import MigrationEvent, MigrationTracker, parse_event
from otelkv.kubevirt.names import MAX_NAME, MAX_REASON
from otelkv.kubevirt.tracker import RECORD_OVERHEAD

BASE = datetime(2026, 1, 1, tzinfo=UTC)
BIG = 20_000


def _failed(i: int, *, name: str, reason: str) -> list[MigrationEvent]:
    ts = (BASE + timedelta(seconds=i)).isoformat()

    def on_node01(reason: str, message: str, event_type: str) -> MigrationEvent:
        return parse_event(
            reason=reason,
            message=message,
            event_type=event_type,
            object_kind="VirtualMachineInstance",
            object_name=name,
            namespace="ns",
            component="virt-handler",
            host="node01",
            timestamp=ts,
        )

    return [
        on_node01("Migrating", "VirtualMachineInstance is migrating.", "Normal"),
        on_node01("Migrated", f"VirtualMachineInstance migration uid {i} failed. reason: {reason}", "Warning"),
    ]


def test_names_and_reasons_past_kubernetes_limits_are_not_kept_whole() -> None:
    name, reason = "v" * BIG, "r" * BIG
    events = _failed(0, name=name, reason=reason)
    assert all(e.vm_name is None for e in events)  # not a Kubernetes name: not a fact
    failed = events[1]
    assert failed.failure_reason is None or len(failed.failure_reason) <= MAX_REASON
    fine = _failed(1, name="v" * MAX_NAME, reason="r" * 100)
    assert fine[0].vm_name == "v" * MAX_NAME


@given(st.text(min_size=0, max_size=3000), st.text(min_size=0, max_size=3000))
def test_every_fact_is_bounded(name: str, message: str) -> None:
    event = parse_event(
        reason="Migrated",
        message=message,
        object_kind="VirtualMachineInstanceMigration",
        object_name=name,
        namespace=name,
        object_uid=name,
        host=name,
        component="virt-handler",
    )
    for fact in ("vm_name", "migration_name", "migration_uid", "source_node", "target_node", "target_pod", "namespace"):
        value = getattr(event, fact)
        assert value is None or len(value) <= MAX_NAME, fact
    assert event.failure_reason is None or len(event.failure_reason) <= MAX_REASON


def test_the_tracker_stays_within_max_bytes_under_the_finding() -> None:
    limit = 4 * 1024 * 1024
    tracker = MigrationTracker(max_bytes=limit)
    tracemalloc.start()
    try:
        for request in range(178):
            for n in range(60):
                i = request * 60 + n
                for event in _failed(i, name=f"vm-{i}-" + "x" * 200, reason="y" * BIG):
                    tracker.track(event, key=("uid", i))
                assert tracker.bytes <= limit
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tracker.bytes <= limit and len(tracker) < 178 * 60
    assert held < 3 * limit, f"the tracker holds {held} bytes for an estimate of {tracker.bytes}"
    assert tracker.bytes >= len(tracker) * RECORD_OVERHEAD


def test_the_message_cache_is_bounded_in_bytes() -> None:
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(1800):
            parse_event(
                reason="Migrated",
                message=f"{i} " + "z" * 40_000,
                object_kind="VirtualMachineInstance",
                object_name="vm",
                component="virt-handler",
            )
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 16 * 1024 * 1024, f"{(after - before) >> 20} MiB held (237 MiB before)"
