"""``make demo``: runtime dependencies only, raw records before the tables, Loki's terms right;
and the package metadata builds without setuptools' deprecation warning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

from tests.conftest import ROOT
from tests.test_cli import ENV


def test_make_demo_installs_the_runtime_dependencies_only() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}  # under make test
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "demo"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
        env=env,
    )
    installs = [line for line in dry.stdout.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [
        ".venv/bin/python -m pip install --quiet --require-hashes -r requirements.lock",
        "PYTHONWARNINGS=ignore::UserWarning .venv/bin/python -m pip install --quiet --no-deps -e .",
    ], dry.stdout
    assert "[test]" not in dry.stdout and "npm" not in dry.stdout
    assert dry.stdout.rstrip().endswith(".venv/bin/python examples/demo.py")


def test_the_demo_shows_raw_json_lines_then_the_tables_and_says_structured_metadata() -> None:
    done = subprocess.run(
        [sys.executable, "examples/demo.py"],
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    raw = [line for line in out.splitlines() if line.startswith('{"attributes"')]
    assert len(raw) == 3
    assert all(json.loads(line)["attributes"]["kubevirt.migration.phase"] for line in raw)
    assert out.index(raw[-1]) < out.index("TIME ") < out.index("$ otelkv migrations")
    assert "structured metadata, not index labels" in out
    # Issue 21: which record is the one summary of its migration, and who started each.
    table = out[out.index("TIME ") : out.index("$ otelkv migrations")]
    assert len(re.findall(r"^\d\d:\d\d:\d\d  SUMMARY ", table, re.M)) == 4 and "TRIGGER" in table
    assert "rhel9-db.prod migration worker-a.lab.example.com → worker-b.lab.example.com failed after 16 s" in out
    assert "(worker-a.lab.example.com drain)" in out and "fedora-vm migrated node01 → node02 in 31 s" in out
    assert not re.search(r"structured metadata[^.\n]*\bindex(ed)?\b(?! labels)", out)
    # Issue 22: the demo ends with the timeline of its four migrations, grouped by source node.
    timeline = out[out.index("$ otelkv migrations examples/kubevirt-events.json --timeline") :]
    assert timeline.count("│") == 2 * 4 and "by source node" in timeline and timeline.count("✗") == 2


def test_the_license_is_an_spdx_expression() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"  # a table is deprecated since setuptools 77
    requires = project["build-system"]["requires"]
    assert any(
        re.fullmatch(r"setuptools>=(\d+)", r.split("#")[0].strip()) and int(r.split(">=")[1]) >= 77 for r in requires
    )
    assert not any(c.startswith("License ::") for c in project["project"].get("classifiers", []))


def test_make_installs_without_setuptools_editable_banner() -> None:
    """Issue 20 item 9: ``make demo`` printed setuptools' "Editable installation" warning block.
    Every editable install in the Makefile passes PYTHONWARNINGS to pip's build backend."""
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and " -e " in line]
    assert installs and all("PYTHONWARNINGS=ignore::UserWarning" in line for line in installs), installs
