"""The Grafana dashboard (issue 21 §1 and §3, issue 22 §2): a cluster variable every query honours,
migrations by trigger, drains by node, and a state timeline of migrations by VM. Records are fed
through the panels' own queries (tests/logql_eval.py) with Grafana's variables filled in."""

from __future__ import annotations

import re
from typing import Any

from otelkv.kubevirt import PHASES, TERMINAL_PHASES
from tests.logql_eval import Record, as_dicts, evaluate
from tests.test_deploy import dashboard

NOW = 1_000_000.0
SELECTOR = re.compile(r"\{[^}]*\}")


def panel(title: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in dashboard()["panels"] if p["title"] == title]
    [one] = found
    return one


def filled(expr: str, **variables: str) -> str:
    values = {"cluster": ".*", "namespace": ".+", "vm": ".+", "__auto": "5m", "__range": "1h", **variables}
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr)


def summary(ts: float, vm: str, phase: str, trigger: str, node: str, cluster: str = "east") -> Record:
    return Record(
        ts,
        {
            "service_name": "kubevirt-events",
            "k8s_cluster_name": cluster,
            "k8s_namespace_name": "vms",
            "event_name": "kubevirt.migration.summary",
            "kubevirt_vm_name": vm,
            "kubevirt_migration_phase": phase,
            "kubevirt_migration_trigger": trigger,
            "kubevirt_migration_source_node": node,
        },
    )


RECORDS = [
    summary(NOW - 60, "a", "Succeeded", "evacuation", "node01"),
    summary(NOW - 120, "b", "Failed", "evacuation", "node01"),
    summary(NOW - 180, "c", "Succeeded", "evacuation", "node02"),
    summary(NOW - 200, "d", "Succeeded", "workload-update", "node03"),
    summary(NOW - 240, "e", "Succeeded", "user", "node03", cluster="west"),
]


def test_a_cluster_variable_that_every_query_honours() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    cluster = variables["cluster"]
    assert cluster["query"]["label"] == "k8s_cluster_name" and cluster["type"] == "query"
    assert cluster["includeAll"] and cluster["allValue"] == ".*"  # All also matches records without one
    assert 'k8s_cluster_name=~"$cluster"' in variables["namespace"]["query"]["stream"]  # namespaces of that cluster
    for p in dashboard()["panels"]:
        for target in p["targets"]:
            for selector in SELECTOR.findall(target["expr"]):
                assert 'k8s_cluster_name=~"$cluster"' in selector, (p["title"], selector)


def test_the_cluster_variable_picks_one_cluster() -> None:
    expr = panel("Migrations")["targets"][0]["expr"]
    assert list(evaluate(filled(expr), RECORDS, NOW).values()) == [5.0]
    assert list(evaluate(filled(expr, cluster="west"), RECORDS, NOW).values()) == [1.0]


def test_migrations_by_trigger() -> None:
    p = panel("Migrations by trigger")
    [target] = p["targets"]
    assert target["legendFormat"] == "{{kubevirt_migration_trigger}}"
    counts = evaluate(filled(target["expr"], __auto="10m"), RECORDS, NOW)
    assert {dict(k)["kubevirt_migration_trigger"]: v for k, v in counts.items()} == {
        "evacuation": 3.0,
        "workload-update": 1.0,
        "user": 1.0,
    }


def test_drains_by_node_count_evacuations_off_each_node_by_outcome() -> None:
    [target] = panel("Drains by node (evacuation migrations by source node)")["targets"]
    counts = evaluate(filled(target["expr"]), RECORDS, NOW)
    found = {(d["kubevirt_migration_source_node"], d["kubevirt_migration_phase"]) for d in as_dicts(counts)}
    assert found == {("node01", "Succeeded"), ("node01", "Failed"), ("node02", "Succeeded")}  # not node03's


def test_a_state_timeline_of_migrations_by_vm() -> None:
    """Issue 22 §2: one row per VM over the selected range, its migrations' phases as states. The
    query is a log query (each record's phase at its time); Grafana splits the rows by VM
    (``partitionByValues``) after taking the labels apart (``extractFields``), in time order."""
    p = panel("Migrations by VM")
    assert p["type"] == "state-timeline"
    [target] = p["targets"]
    assert target["expr"].startswith("{") and target["queryType"] == "range"  # a log query over the range
    assert 'kubevirt_migration_phase!=""' in target["expr"] and 'kubevirt_vm_name=~"$vm"' in target["expr"]
    steps = [t["id"] for t in p["transformations"]]
    assert steps.index("extractFields") < steps.index("partitionByValues")
    partition = next(t for t in p["transformations"] if t["id"] == "partitionByValues")
    assert partition["options"]["fields"] == ["kubevirt_vm_name"]
    sort = next(t for t in p["transformations"] if t["id"] == "sortBy")
    assert sort["options"]["sort"] == [{"field": "Time", "desc": False}]
    [mapping] = p["fieldConfig"]["defaults"]["mappings"]
    assert set(mapping["options"]) == set(PHASES)  # every phase otelkv reports has a colour
    colours = {ph: m["color"] for ph, m in mapping["options"].items()}
    assert colours["Succeeded"] == "green" and colours["Failed"] == "red"
    assert {colours[ph] for ph in PHASES if ph not in TERMINAL_PHASES} == {"blue"}
