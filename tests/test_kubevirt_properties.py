"""Properties of the parser: totality, round trips with valid Kubernetes names, cut messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from otelkv.kubevirt import PHASES, RULES, MigrationEvent, Rule, parse_event
from otelkv.kubevirt.rules import FROM_MESSAGE
from otelkv.kubevirt.template import render
from tests import strategies as names

VMI, VMIM = "VirtualMachineInstance", "VirtualMachineInstanceMigration"
KNOWN_REASONS = sorted({r.reason for r in RULES if r.reason})
TEXT_FACTS = (
    "vm_name",
    "migration_name",
    "migration_uid",
    "target_pod",
    "target_node",
    "source_node",
    "failure_reason",
    "target_address",
)


def _ports(draw: st.DrawFn) -> str:
    return ",".join(str(p) for p in draw(st.lists(names.port, min_size=1, max_size=3)))


def _endpoint(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return f"{draw(names.ipv4)}:{draw(names.port)}"
    return f"[{draw(names.ipv6)}]:{draw(names.port)}"


@dataclass(frozen=True)
class Rendered:
    """A rule rendered with generated values, and the facts that rendering must give back."""

    rule: Rule
    message: str
    values: dict[str, str]
    vm: str
    namespace: str
    host: str | None
    object_name: str
    object_uid: str


@st.composite
def rendered(draw: st.DrawFn, rule: Rule | None = None) -> Rendered:
    rule = rule or draw(st.sampled_from(RULES))
    vm = draw(names.dns_subdomain)
    generators: dict[str, Any] = {
        "vm_namespace": lambda: draw(names.dns_label),
        "vm_name": lambda: vm,
        "pod_namespace": lambda: draw(names.dns_label),
        "target_pod": lambda: draw(names.launcher_pod(vm)),
        "migration_name": lambda: draw(names.dns_subdomain),
        "name": lambda: (rule.name_prefix or "") + draw(names.dns_subdomain),
        "migration_uid": lambda: draw(names.uid),
        "target_node": lambda: draw(names.dns_subdomain),
        "target_address": lambda: draw(st.one_of(names.ipv4, names.ipv6)),
        "target_endpoint": lambda: _endpoint(draw),
        "target_ports": lambda: _ports(draw),
        "seconds": lambda: str(draw(st.integers(0, 10**6))),
        "failure_reason": lambda: draw(names.free_text),
        "error": lambda: draw(names.free_text),
    }
    values = {role: generators[role]() for role in rule.args}
    message = render(rule.tokens, values)
    host = None
    if rule.host is not None:
        host = draw(
            st.sampled_from([values["target_node"]])
            if "target_node" in values and draw(st.booleans())
            else names.dns_subdomain
        )
    vmim = rule.kind == VMIM
    return Rendered(
        rule,
        message,
        values,
        vm,
        draw(names.dns_label),
        host,
        draw(names.dns_subdomain) if vmim else vm,
        draw(names.uid),
    )


def parse(r: Rendered, message: str | None = None) -> MigrationEvent:
    return parse_event(
        reason=r.rule.reason or "failed to set memlock rlimit: operation not permitted",
        message=r.message if message is None else message,
        event_type=r.rule.type,
        object_kind=r.rule.kind,
        object_name=r.object_name,
        object_uid=r.object_uid,
        namespace=r.namespace,
        host=r.host,
    )


def truth(r: Rendered) -> dict[str, Any]:
    """The facts a whole rendering states, worked out from the values (not from the parser)."""
    v, vmim = r.values, r.rule.kind == VMIM
    facts: dict[str, Any] = {"phase": None if r.rule.phase == "-" else r.rule.phase}
    facts["migration_name"] = r.object_name if vmim else v.get("migration_name")
    facts["migration_uid"] = r.object_uid if vmim else v.get("migration_uid")
    facts["target_pod"] = v.get("target_pod")
    if not vmim or "vm_name" in v:
        facts["vm_name"] = r.vm
    elif "target_pod" in v:
        facts["vm_name"] = r.vm if len(f"virt-launcher-{r.vm}-") < 58 else None
    else:
        facts["vm_name"] = None
    facts["source_node"] = facts["target_node"] = None
    if r.rule.host == "source":
        facts["source_node"] = r.host
    elif r.rule.host == "target":
        facts["target_node"] = r.host
    elif r.rule.host == "migrated":
        facts["target_node"] = v["target_node"]
        facts["source_node"] = r.host if r.host != v["target_node"] else None
    if "target_address" in v:
        facts["target_address"] = v["target_address"]
    elif "target_endpoint" in v:
        facts["target_address"] = v["target_endpoint"].rpartition(":")[0].strip("[]")
    if "target_ports" in v:
        facts["target_ports"] = tuple(int(p) for p in v["target_ports"].split(","))
    if "failure_reason" in v:
        facts["failure_reason"] = v["failure_reason"].strip() or None
    elif r.rule.failure == FROM_MESSAGE:
        facts["failure_reason"] = re.sub(r"%!\(EXTRA [^)]*\)", "", r.message).strip()
    elif r.rule.failure is not None:
        facts["failure_reason"] = r.rule.failure
    else:
        facts["failure_reason"] = None
    return facts


def _not_shadowed(r: Rendered) -> bool:
    """False for the rare renderings an earlier, more specific row reads on purpose."""
    first = parse(r).template
    return first == r.rule.format or first is None


def check_round_trip(r: Rendered) -> None:
    event = parse(r)
    assert not event.truncated
    assert event.template == r.rule.format
    assert event.is_migration == r.rule.attempt
    for name, value in truth(r).items():
        assert getattr(event, name) == value, name


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.format[:40])
@settings(max_examples=max(10, settings().max_examples // 8))  # x 82 rows
@given(data=st.data())
def test_round_trip_of_every_row_with_generated_names(rule: Rule, data: st.DataObject) -> None:
    r = data.draw(rendered(rule))
    assume(_not_shadowed(r))
    check_round_trip(r)


def _row(fmt: str) -> Rule:
    return next(rule for rule in RULES if rule.format == fmt)


def test_round_trip_fqdn_node_that_is_also_the_host() -> None:
    check_round_trip(
        Rendered(
            _row("The VirtualMachineInstance migrated to node %s."),
            "The VirtualMachineInstance migrated to node a.b.c.",
            {"target_node": "a.b.c"},
            "vm",
            "ns",
            "a.b.c",
            "vm",
            "u",
        )
    )


def test_round_trip_regression_empty_last_argument() -> None:
    # An empty last argument left a trailing space, once stripped before matching: a "cut" message.
    check_round_trip(
        Rendered(
            _row("Error creating a Migration: %v"),
            "Error creating a Migration: ",
            {"error": ""},
            "vm",
            "ns",
            None,
            "vm",
            "u",
        )
    )


def test_a_cut_pdb_message_is_not_read_as_created_migration() -> None:
    # Found by the long profile: a name_prefix row skipped for a cut name left "Created Migration
    # %s" as the only candidate, so "Created P…" became phase Pending.
    r = Rendered(
        _row("Created PodDisruptionBudget %s"),
        "Created PodDisruptionBudget kubevirt-migration-pdb-m1",
        {"name": "kubevirt-migration-pdb-m1"},
        "vm",
        "ns",
        None,
        "vm",
        "u",
    )
    assert {parse(r, r.message[:cut]).phase for cut in range(len(r.message) + 1)} == {None}


@given(rendered(), st.data())
def test_a_cut_message_never_invents_a_fact(r: Rendered, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(r.message)))
    assume(_not_shadowed(r))
    event = parse(r, r.message[:cut])
    whole = truth(r)
    assert event.phase in (None, whole["phase"])
    for name in TEXT_FACTS:
        got, true = getattr(event, name), whole.get(name)
        # A value is the true one, or — when the cut fell where the text looks whole — a prefix.
        assert got is None or got == true or (true is not None and true.startswith(got)), name


def _junk_rendering(rule: Rule, junk: str, cut: int) -> str:
    return render(rule.tokens, dict.fromkeys(rule.args, junk))[:cut]


reason_text = st.one_of(st.sampled_from(KNOWN_REASONS), st.text())
message_text = st.one_of(
    st.text(),
    st.builds(_junk_rendering, st.sampled_from(RULES), st.text(), st.integers(0, 300)),
    st.builds(lambda rule, prefix: prefix + rule.format, st.sampled_from(RULES), st.text(max_size=5)),
)
optional_text = st.one_of(st.none(), st.text(), st.sampled_from([VMI, VMIM, "VirtualMachine", "Node"]))


@given(
    reason_text,
    message_text,
    optional_text,
    optional_text,
    optional_text,
    optional_text,
    st.one_of(st.none(), st.text(), st.datetimes(timezones=st.timezones())),
    st.one_of(st.none(), st.integers()),
)
@example("Migrated", "", None, None, None, "node01", None, None)
def test_totality_any_strings_give_a_result(
    reason: str,
    message: str,
    kind: str | None,
    name: str | None,
    namespace: str | None,
    host: str | None,
    timestamp: Any,
    count: int | None,
) -> None:
    event = parse_event(
        reason=reason,
        message=message,
        object_kind=kind,
        object_name=name,
        namespace=namespace,
        host=host,
        timestamp=timestamp,
        count=count,
        component=host,
        event_type=name,
        object_uid=namespace,
    )
    assert event.phase is None or event.phase in PHASES
    assert event.source_node is None or event.source_node != event.target_node
    for f in fields(event):
        if f.name not in ("reason", "message"):  # kept as received
            assert getattr(event, f.name) != "", f"{f.name} is an empty string"
    if event.phase is not None:
        assert event.is_migration or event.object_kind not in (None, VMIM)
    assert (event.reason, event.message) == (reason, message)


def test_regression_a_cut_message_gets_no_constant_failure_reason() -> None:
    # Found by the long profile: an empty (cut) message matched every row of its reason, and the
    # first row's constant "Target pod is down" was reported although nothing said it.
    rule = _row("VirtualMachineInstance migration uid %s failed. reason: Target pod is down")
    full = "VirtualMachineInstance migration uid u-1 failed. reason: Target pod is down"
    r = Rendered(rule, full, {"migration_uid": "u-1"}, "vm", "ns", None, "vm", "u")
    for cut in (0, 10, 40):
        event = parse(r, full[:cut])
        assert event.failure_reason is None and event.phase in (None, "Failed")
    # Cut inside the reason, the text reads as the v1.3-v1.8 "reason: %s" row: a prefix, as allowed.
    assert parse(r, full[:-5]).failure_reason == "Target pod is"
    assert parse(r).failure_reason == "Target pod is down"


@pytest.mark.parametrize("cut", ["", "Created ", "Created PodDisruptionBudget "])
def test_a_cut_before_the_budget_name_keeps_the_migration_budget_row_a_candidate(cut: str) -> None:
    # Found by the cut-message property: a row whose name_prefix cannot be checked yet (the name
    # is not read) must still count, or the other SuccessfulCreate rows (Pending) win alone.
    event = parse_event(
        reason="SuccessfulCreate", message=cut, event_type="Normal", object_kind=VMI, object_name="vm", namespace="ns"
    )
    assert event.phase is None
