"""``otelkv migrations`` takes what kubectl, Loki and Prometheus users type (issue 20 item 5):
``-o json|jsonl|yaml|wide``, ``--vm NAMESPACE/NAME`` (the form the table prints), ``--since 7d``."""

from __future__ import annotations

import contextlib
import io
import json

import yaml

from otelkv.commands import main
from tests.conftest import EXAMPLE


def _migrations(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["migrations", str(EXAMPLE), *args])
    return code, out.getvalue(), err.getvalue()


def test_dash_o_takes_kubectl_outputs() -> None:
    code, out, _ = _migrations("-o", "json")
    assert code == 0
    as_json = json.loads(out)
    code, out, _ = _migrations("-o", "yaml")
    assert code == 0 and yaml.safe_load(out) == as_json
    code, wide, _ = _migrations("-o", "wide")
    assert code == 0 and "FAILURE REASON" in wide.splitlines()[0]


def test_vm_takes_the_namespace_slash_name_the_table_prints() -> None:
    _, out, _ = _migrations("-o", "json")
    first = json.loads(out)[0]
    code, out, err = _migrations("--vm", f"{first['namespace']}/{first['vm']}", "-o", "json")
    assert code == 0 and out and all(m["vm"] == first["vm"] for m in json.loads(out)), err
    _, out, _ = _migrations("--vm", f"another-namespace/{first['vm']}", "-o", "json")
    assert json.loads(out) == []


def test_since_takes_days_and_weeks() -> None:
    for since in ("7d", "2w", "30m"):
        code, _, err = _migrations("--since", since)
        assert code == 0, err
