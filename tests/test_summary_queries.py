"""The dashboard's, the alert rules' and the cookbook's queries on summary records can match them.

A summary record (``event_name="kubevirt.migration.summary"``) exists only for a migration that
ended, so it carries phase ``Succeeded`` or ``Failed`` and nothing else; a query that asks a
summary for another phase (or the VMIM kind, which its resource does not have) finds nothing,
forever, and an alert built on it never fires. The grammar check (test_deploy) cannot see that.
"""

from __future__ import annotations

import re

import pytest

from otelkv.kubevirt import TERMINAL_PHASES
from otelkv.otlp.summary import EVENT_NAME
from tests.logql_eval import Record, as_dicts, evaluate
from tests.test_deploy import dashboard_expressions, doc_blocks, rule_expressions

NOW = 1_000_000.0

SUMMARY = f'event_name="{EVENT_NAME}"'
# One stream selector with its pipeline: a selector {…} and the stages after it up to a range or ")".
PIPELINES = re.compile(r"\{[^}]*\}[^\[\)]*")


def pipelines() -> list[str]:
    exprs = dashboard_expressions() + rule_expressions() + doc_blocks("logql")
    return [p for e in exprs for p in PIPELINES.findall(e)]


def test_queries_count_summaries() -> None:
    assert any(SUMMARY in p for p in pipelines())


@pytest.mark.parametrize("pipeline", [p for p in pipelines() if SUMMARY in p])
def test_a_summary_query_asks_only_what_a_summary_has(pipeline: str) -> None:
    assert "k8s_object_kind" not in pipeline, pipeline
    for wanted in re.findall(r'kubevirt_migration_phase=~?"([^"]*)"', pipeline):
        assert set(wanted.split("|")) <= TERMINAL_PHASES, pipeline


def test_the_cookbook_breaks_migrations_down_by_trigger_and_drains_by_node() -> None:
    """Issue 21 §1: docs/logql.md counts migrations by trigger, and drains (evacuations) by the
    drained node; records fed through the cookbook's own queries (tests/logql_eval.py)."""
    cookbook = doc_blocks("logql")
    [by_trigger] = [q for q in cookbook if q.startswith("sum by (kubevirt_migration_trigger) (") and "[1h]" in q]
    [drains] = [
        q for q in cookbook if q.startswith("sum by (kubevirt_migration_source_node, kubevirt_migration_phase)")
    ]

    def record(trigger: str, node: str, phase: str = "Succeeded") -> Record:
        labels = {
            "service_name": "kubevirt-events",
            "event_name": EVENT_NAME,
            "kubevirt_migration_phase": phase,
            "kubevirt_migration_trigger": trigger,
            "kubevirt_migration_source_node": node,
        }
        return Record(NOW - 60, labels)

    records = [record("evacuation", "node01"), record("evacuation", "node01", "Failed"), record("user", "node02")]
    records.append(Record(NOW - 60, {**records[0].labels, "event_name": "", "kubevirt_migration_phase": "Running"}))
    counts = evaluate(by_trigger, records, NOW)
    assert {dict(k)["kubevirt_migration_trigger"]: v for k, v in counts.items()} == {"evacuation": 2.0, "user": 1.0}
    nodes = {
        (d["kubevirt_migration_source_node"], d["kubevirt_migration_phase"])
        for d in as_dicts(evaluate(drains, records, NOW))
    }
    assert nodes == {("node01", "Succeeded"), ("node01", "Failed")}
