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
from tests.test_deploy import dashboard_expressions, doc_blocks, rule_expressions

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
