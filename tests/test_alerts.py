"""The migration alerts (issue 21 §4, §3): records fed through each rule's own LogQL expression.

Each rule's ``expr`` is read from deploy/apps/monitoring/rules/kubevirt-migrations.yaml and
evaluated by tests/logql_eval.py over records shaped as otelkv writes them to Loki (index labels
and structured metadata together, as a metric query sees them); ``for:`` is played by evaluating
at every group interval over its length. The grammar check of the same expressions is
tests/test_deploy.py; the runbooks are docs/alerts.md.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.logql_eval import Record, as_dicts, duration, evaluate
from tests.test_deploy import DEPLOY, load

RULES = DEPLOY / "apps/monitoring/rules/kubevirt-migrations.yaml"
ALERTS_DOC = ROOT / "docs/alerts.md"
H = 3600.0
NOW = 100 * H
CLUSTER = "homelab"


def rules() -> dict[str, dict[str, Any]]:
    out = {}
    for group in load(RULES)["groups"]:
        for rule in group["rules"]:
            out[rule["alert"]] = {**rule, "interval": duration(group["interval"])}
    return out


def firing(name: str, records: list[Record], at: float = NOW) -> list[dict[str, str]]:
    """The label sets of the alert ``name`` that fire at ``at``: the expression answers them at
    every evaluation over the rule's ``for`` (Prometheus' pending state)."""
    rule = rules()[name]
    hold = duration(rule.get("for", "0s"))
    steps = int(hold // rule["interval"])
    result = evaluate(rule["expr"], records, at)
    for i in range(1, steps + 1):
        earlier = evaluate(rule["expr"], records, at - i * rule["interval"])
        result = {k: v for k, v in result.items() if k in earlier}
    return as_dicts(result)


def summary(ts: float, vm: str, phase: str, **extra: str) -> Record:
    labels = {
        "service_name": "kubevirt-events",
        "k8s_cluster_name": extra.pop("cluster", CLUSTER),
        "k8s_namespace_name": extra.pop("namespace", "vms"),
        "event_name": "kubevirt.migration.summary",
        "kubevirt_vm_name": vm,
        "kubevirt_migration_phase": phase,
        "kubevirt_migration_name": extra.pop("migration", f"kubevirt-migrate-vm-{int(ts)}"),
        **extra,
    }
    return Record(ts, labels, f"{vm} {phase}")


def event(ts: float, **labels: str) -> Record:
    line = labels.pop("line", "")
    return Record(ts, {"service_name": "kubevirt-events", "k8s_cluster_name": CLUSTER, **labels}, line)


def names(found: list[dict[str, str]], label: str) -> list[str]:
    return [f[label] for f in found]


# -- every rule ------------------------------------------------------------------------------------


def test_every_rule_carries_the_cluster_and_has_a_runbook() -> None:
    text = ALERTS_DOC.read_text()
    headings = re.findall(r"^## (\w+)$", text, re.M)
    assert sorted(headings) == sorted(rules())
    for name, rule in rules().items():
        assert "k8s_cluster_name" in rule["expr"], name  # grouped by, so the template has a value
        assert rule["labels"]["cluster"] == "{{ $labels.k8s_cluster_name }}", name
        assert rule["annotations"]["runbook"] == f"docs/alerts.md#{name.lower()}", name
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means**", "**Confirm**", "**Do**"):
            assert part in section, (name, part)
        assert "```logql" in section, name


def test_the_cluster_label_of_every_rule_is_filled_from_its_result() -> None:
    """Feed one failed migration in cluster "east": the alert's ``cluster`` label (templated from
    ``$labels.k8s_cluster_name``) is "east", not empty."""
    records = [summary(NOW - 60, "vm-a", "Failed", cluster="east", kubevirt_migration_failure_reason="x")]
    [alert] = firing("KubeVirtMigrationFailed", records)
    template = rules()["KubeVirtMigrationFailed"]["labels"]["cluster"]
    rendered = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: alert.get(m.group(1), ""), template)
    assert rendered == "east"


# -- the rules that were there ---------------------------------------------------------------------


def test_a_failed_migration_fires_once_per_migration() -> None:
    records = [
        summary(NOW - 120, "vm-a", "Failed", kubevirt_migration_failure_reason="target pod never ready"),
        summary(NOW - 60, "vm-b", "Succeeded"),
        summary(NOW - 10 * 60, "vm-c", "Failed"),  # older than the 5 min window
    ]
    [alert] = firing("KubeVirtMigrationFailed", records)
    assert alert["kubevirt_vm_name"] == "vm-a" and alert["k8s_cluster_name"] == CLUSTER


def test_the_failure_ratio_is_per_cluster() -> None:
    east = [summary(NOW - i * H, f"e{i}", "Failed" if i % 2 else "Succeeded", cluster="east") for i in range(1, 11)]
    west = [summary(NOW - i * H, f"w{i}", "Failed" if i == 1 else "Succeeded", cluster="west") for i in range(1, 11)]
    assert names(firing("KubeVirtMigrationFailureRatioHigh", east + west), "k8s_cluster_name") == ["east"]


def test_a_migration_without_an_end_is_stuck_one_that_ended_is_not() -> None:
    def scheduling(ts: float, migration: str) -> Record:
        return event(
            ts,
            k8s_namespace_name="vms",
            k8s_object_kind="VirtualMachineInstanceMigration",
            kubevirt_migration_phase="Scheduling",
            kubevirt_migration_name=migration,
            kubevirt_vm_name="vm-" + migration,
        )

    records = [
        scheduling(NOW - 45 * 60, "m1"),
        scheduling(NOW - 45 * 60, "m2"),
        event(
            NOW - 5 * 60, k8s_namespace_name="vms", kubevirt_migration_phase="Succeeded", kubevirt_migration_name="m2"
        ),
        scheduling(NOW - 10 * 60, "m3"),  # too young
    ]
    assert names(firing("KubeVirtMigrationStuck", records), "kubevirt_migration_name") == ["m1"]


# -- repeated migrations ---------------------------------------------------------------------------


def test_more_than_twelve_migrations_in_a_day_fire_twelve_do_not() -> None:
    busy = [summary(NOW - i * H, "busy", "Succeeded") for i in range(13)]
    calm = [summary(NOW - i * H, "calm", "Succeeded") for i in range(12)]
    old = [summary(NOW - 25 * H - i, "old", "Succeeded") for i in range(20)]  # outside the 24 h
    failed = [summary(NOW - i * H, "flaky", "Failed") for i in range(13)]  # migrated = succeeded
    found = firing("KubeVirtVMMigratedTooOften", busy + calm + old + failed)
    assert names(found, "kubevirt_vm_name") == ["busy"]


def test_repeated_failures_without_a_success_fire_one_success_clears() -> None:
    failing = [summary(NOW - i * H, "stuck", "Failed") for i in (1, 2, 3)]
    recovered = [summary(NOW - i * H, "recovered", "Failed") for i in (2, 3, 4)] + [
        summary(NOW - 1 * H, "recovered", "Succeeded")
    ]
    twice = [summary(NOW - i * H, "twice", "Failed") for i in (1, 2)]
    spread = [summary(NOW - i * H, "spread", "Failed") for i in (1, 5, 9)]  # the approximation's miss
    found = firing("KubeVirtVMMigrationFailingRepeatedly", failing + recovered + twice + spread)
    assert names(found, "kubevirt_vm_name") == ["stuck"]


def test_the_same_vm_name_in_two_namespaces_or_clusters_is_two_vms() -> None:
    records = [summary(NOW - i * H, "vm", "Failed", namespace="a") for i in (1, 2)] + [
        summary(NOW - 3 * H, "vm", "Failed", namespace="b")
    ]
    records += [summary(NOW - i * H, "vm", "Failed", namespace="a", cluster="west") for i in (1,)]
    assert firing("KubeVirtVMMigrationFailingRepeatedly", records) == []


# -- slow migrations -------------------------------------------------------------------------------


def test_p95_per_namespace_above_the_threshold() -> None:
    slow = [
        summary(NOW - i * 600, f"s{i}", "Succeeded", namespace="slow", kubevirt_migration_duration_seconds="400")
        for i in range(10)
    ]
    fast = [
        summary(NOW - i * 600, f"f{i}", "Succeeded", namespace="fast", kubevirt_migration_duration_seconds="30")
        for i in range(10)
    ]
    one_slow = [
        summary(NOW - i * 600, f"o{i}", "Succeeded", namespace="mostly", kubevirt_migration_duration_seconds="20")
        for i in range(30)
    ] + [summary(NOW - 60, "o-slow", "Succeeded", namespace="mostly", kubevirt_migration_duration_seconds="5000")]
    failed = [summary(NOW - 60, "x", "Failed", namespace="failing", kubevirt_migration_duration_seconds="9000")]
    unknown = [summary(NOW - 60, "u", "Succeeded", namespace="unknown")]  # no duration: not counted
    found = firing("KubeVirtMigrationsSlow", slow + fast + one_slow + failed + unknown)
    assert names(found, "k8s_namespace_name") == ["slow"]


def test_one_migration_over_the_limit_fires_with_its_name() -> None:
    records = [
        summary(NOW - 120, "long", "Succeeded", kubevirt_migration_duration_seconds="2400", migration="m-long"),
        summary(NOW - 120, "failed-long", "Failed", kubevirt_migration_duration_seconds="1900", migration="m-f"),
        summary(NOW - 120, "short", "Succeeded", kubevirt_migration_duration_seconds="300", migration="m-short"),
        summary(NOW - H, "long-ago", "Succeeded", kubevirt_migration_duration_seconds="4000", migration="m-old"),
    ]
    found = firing("KubeVirtMigrationTookTooLong", records)
    assert names(found, "kubevirt_migration_name") == ["m-f", "m-long"]


# -- drains ----------------------------------------------------------------------------------------


def evacuation(ts: float, vm: str, node: str, phase: str | None = None) -> Record:
    labels = {
        "k8s_namespace_name": "vms",
        "kubevirt_vm_name": vm,
        "kubevirt_migration_trigger": "evacuation",
        "kubevirt_migration_source_node": node,
        "kubevirt_migration_name": f"kubevirt-evacuation-{vm}",
    }
    if phase in ("Succeeded", "Failed"):
        return summary(ts, vm, phase, migration=labels.pop("kubevirt_migration_name"), **labels)
    return event(ts, kubevirt_migration_phase=phase or "Running", **labels)


def test_a_failed_evacuation_names_the_drained_node() -> None:
    records = [
        evacuation(NOW - 600, "a", "node01", "Failed"),
        evacuation(NOW - 600, "b", "node02", "Succeeded"),
        summary(NOW - 600, "c", "Failed", kubevirt_migration_trigger="user", kubevirt_migration_source_node="node03"),
    ]
    assert names(firing("KubeVirtDrainMigrationFailed", records), "kubevirt_migration_source_node") == ["node01"]


def test_a_drain_with_nothing_finishing_for_15_minutes_has_stalled() -> None:
    stalled = [evacuation(NOW - m * 60, "a", "node01") for m in range(0, 25, 2)]  # running, never ends
    moving = [evacuation(NOW - m * 60, "b", "node02") for m in range(0, 25, 2)] + [
        evacuation(NOW - 10 * 60, "c", "node02", "Succeeded")
    ]
    young = [evacuation(NOW - 5 * 60, "d", "node03")]  # started 5 min ago: not yet 15
    failing = [evacuation(NOW - m * 60, "e", "node04", "Failed") for m in (1, 9, 17, 25)]
    user = [
        event(NOW - m * 60, kubevirt_migration_trigger="user", kubevirt_migration_source_node="node05")
        for m in range(0, 25, 2)
    ]
    found = firing("KubeVirtDrainStalled", stalled + moving + young + failing + user)
    assert names(found, "kubevirt_migration_source_node") == ["node01", "node04"]


def test_a_drain_that_finished_does_not_stall() -> None:
    done = [evacuation(NOW - 40 * 60, "a", "node01"), evacuation(NOW - 35 * 60, "a", "node01", "Succeeded")]
    assert firing("KubeVirtDrainStalled", done) == []


def test_a_vm_reported_not_migratable_names_its_node() -> None:
    message = "EvictionStrategy is set but vmi is not migratable; cannot migrate VMI: PVC disk is not shared"

    def warning(ts: float, vm: str, node: str, text: str = message, reason: str = "Migrated") -> Record:
        return event(
            ts, k8s_event_reason=reason, k8s_node_name=node, k8s_namespace_name="vms", kubevirt_vm_name=vm, line=text
        )

    records = [
        warning(NOW - 300, "pinned", "node01"),
        warning(NOW - 2 * H, "old", "node02"),  # outside the 30 min window
        warning(NOW - 300, "other-reason", "node05", reason="SyncFailed"),
        warning(NOW - 300, "migrated", "node03", text="The VirtualMachineInstance migrated to node node04."),
    ]
    [alert] = firing("KubeVirtVMNotMigratable", records)
    assert (alert["kubevirt_vm_name"], alert["k8s_node_name"]) == ("pinned", "node01")


# -- the evaluator itself --------------------------------------------------------------------------


def test_the_evaluator_refuses_what_loki_refuses_and_what_it_does_not_cover() -> None:
    with pytest.raises(ValueError, match="grouping"):
        evaluate('count_over_time({a="b"} [5m]) by (x)', [], NOW)
    with pytest.raises(ValueError, match="unsupported"):
        evaluate('topk(3, count_over_time({a="b"} [5m]))', [], NOW)


def test_the_evaluator_follows_prometheus_precedence_and_matching() -> None:
    records = [event(NOW - 1, k8s_namespace_name="a", x="1"), event(NOW - 1, k8s_namespace_name="b", x="1")]
    both = 'sum by (k8s_namespace_name) (count_over_time({service_name="kubevirt-events"} [1m]))'
    only_a = (
        'sum by (k8s_namespace_name) (count_over_time({service_name="kubevirt-events"} | k8s_namespace_name="a" [1m]))'
    )
    # ">" binds tighter than "unless": (both > 0) unless only_a
    assert as_dicts(evaluate(f"{both} > 0 unless {only_a}", records, NOW)) == [{"k8s_namespace_name": "b"}]
    assert evaluate(f"{both} > 5", records, NOW) == {}
    assert list(evaluate(f"{both} > bool 5", records, NOW).values()) == [0.0, 0.0]
