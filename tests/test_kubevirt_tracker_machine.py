"""A state machine drives the tracker through interleaved migrations of several VMs.

Each migration is played from KubeVirt's real event sequence (both emitter generations, success
and failure), interleaved with other VMs' migrations, with adjacent events a few seconds apart
swapped (out of order) and unrelated events thrown in. The truth of every migration is known, so
every fact the tracker reports is checked against it: nothing may leak from one migration into
another, source and target never coincide, memory stays within its bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from otelkv.kubevirt import MigrationEvent, MigrationTracker, parse_event, parse_k8s_event
from tests import strategies as names
from tests.scenarios import BASE, VMI, Truth, migration_events

VMS = [("ns-a", "vm1"), ("ns-b", "vm1"), ("ns-a", "web.prod-01"), ("ns-c", "db-2")]
NODES = ["node01", "node02", "node03.lab.example.com", "node04"]
FAILURES = [
    "Live migration failed error encountered during MigrateToURI3 libvirt api call",
    "Live migration is not completed after 150 seconds and has been aborted",
    "Live migration aborted ",
]
FACTS = ("vm_name", "migration_name", "migration_uid", "target_pod")


@dataclass
class Playing:
    """One migration being played: its truth and the events still to send."""

    truth: Truth
    events: list[dict[str, Any]]
    duration: int
    swapped: bool = False
    outputs: list[MigrationEvent] = field(default_factory=list)


class TrackerMachine(RuleBasedStateMachine):
    max_entries = 1000

    def __init__(self) -> None:
        super().__init__()
        self.tracker = MigrationTracker(max_entries=self.max_entries, reorder_window=timedelta(seconds=10))
        self.playing: dict[int, Playing] = {}
        self.location: dict[int, str] = {}
        self.last_end: dict[int, datetime] = {}
        self.clock = BASE
        self.started = 0

    @rule(
        vm=st.integers(0, len(VMS) - 1),
        nodes=st.permutations(NODES),
        succeeded=st.booleans(),
        v16=st.booleans(),
        gap=st.one_of(st.integers(1, 15), st.integers(1, 7200)),
        running=st.integers(1, 600),
        failure=st.sampled_from(FAILURES),
        suffix=names.random_suffix,
    )
    def start(
        self, vm: int, nodes: list[str], succeeded: bool, v16: bool, gap: int, running: int, failure: str, suffix: str
    ) -> None:
        if vm in self.playing:
            return  # KubeVirt runs one migration of a VMI at a time
        ns, name = VMS[vm]
        source = self.location.get(vm, nodes[0])
        target = next(n for n in nodes if n != source)
        self.started += 1
        truth = Truth(
            ns,
            name,
            f"kubevirt-migrate-vm-{self.started:05d}",
            f"uid-{self.started}",
            source,
            target,
            f"virt-launcher-{name}-{suffix}",
            succeeded,
            None if succeeded else failure,
        )
        start = max(self.clock, self.last_end.get(vm, BASE)) + timedelta(seconds=gap)
        self.clock = start
        events = migration_events(truth, start=start, handler_v16=v16, vmi_uid=f"vmi-{vm}", running_seconds=running)
        self.playing[vm] = Playing(truth, events, running + 4)  # to the handler's word: the earliest end
        self.last_end[vm] = start + timedelta(seconds=running + 5)
        self.location[vm] = target if succeeded else source

    @precondition(lambda self: self.playing)
    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        vm = data.draw(st.sampled_from(sorted(self.playing)))
        play = self.playing[vm]
        out = self.tracker.observe(parse_k8s_event(play.events.pop(0)))
        play.outputs.append(out)
        self.check(out, play)
        if not play.events:
            del self.playing[vm]
            self.check_complete(play)

    @precondition(lambda self: any(len(p.events) >= 2 for p in self.playing.values()))
    @rule(data=st.data())
    def swap(self, data: st.DataObject) -> None:
        """Two adjacent events of one migration arrive out of order, if they are seconds apart."""
        vm = data.draw(st.sampled_from(sorted(v for v, p in self.playing.items() if len(p.events) >= 2)))
        play = self.playing[vm]
        first, second = (parse_k8s_event(e).timestamp for e in play.events[:2])
        assert first is not None and second is not None
        if second - first <= timedelta(seconds=5):
            play.events[0], play.events[1] = play.events[1], play.events[0]
            play.swapped = True

    @rule(vm=st.integers(0, len(VMS) - 1), host=st.sampled_from(NODES))
    def unrelated(self, vm: int, host: str) -> None:
        ns, name = VMS[vm]
        event = parse_event(
            reason="Started",
            message="VirtualMachineInstance started.",
            object_kind=VMI,
            object_name=name,
            namespace=ns,
            host=host,
            timestamp=self.clock,
        )
        assert self.tracker.observe(event) is event

    def check(self, out: MigrationEvent, play: Playing) -> None:
        truth = play.truth
        for fact, true in (
            ("vm_name", truth.vm),
            ("migration_name", truth.migration),
            ("migration_uid", truth.migration_uid),
            ("target_pod", truth.target_pod),
            ("source_node", truth.source),
            ("target_node", truth.target),
        ):
            assert getattr(out, fact) in (None, true), (fact, getattr(out, fact), true)
        assert out.source_node is None or out.source_node != out.target_node
        if out.phase == "Failed":
            assert out.failure_reason in (None, (truth.failure_reason or "").strip())
        if out.duration_seconds is not None:
            # The controller's word, a second after the handler's, ends it when it arrives first.
            assert 0 <= out.duration_seconds <= play.duration + (1 if play.swapped else 0)

    def check_complete(self, play: Playing) -> None:
        """Played whole and in order, with nothing forgotten, a migration is known entirely."""
        if play.swapped or self.max_entries < len(VMS):
            return
        last = play.outputs[-1]
        truth = play.truth
        assert (last.vm_name, last.migration_name, last.migration_uid) == (
            truth.vm,
            truth.migration,
            truth.migration_uid,
        )
        assert (last.source_node, last.target_node) == (truth.source, truth.target)
        assert last.duration_seconds == play.duration
        assert last.failure_reason == (truth.failure_reason.strip() if truth.failure_reason else None)

    @invariant()
    def bounded(self) -> None:
        assert len(self.tracker) <= self.max_entries
        for m in self.tracker.migrations():
            assert m.source_node is None or m.source_node != m.target_node


class TightTrackerMachine(TrackerMachine):
    """The same, with room for fewer migrations than VMs: forgetting loses facts, never mixes them."""

    max_entries = 2


TestTracker = TrackerMachine.TestCase
TestTightTracker = TightTrackerMachine.TestCase
