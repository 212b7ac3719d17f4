"""The library's promises about itself: pure, documented, and its doc generated from its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import otelkv.kubevirt as kv
from otelkv.kubevirt import RULES, doc

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = (
    "grpc",
    "google",
    "opentelemetry",
    "yaml",
    "socket",
    "ssl",
    "http",
    "urllib3",
    "requests",
    "asyncio",
    "selectors",
    "select",
    "time",
)


def test_kubevirt_imports_only_the_standard_library_and_no_io() -> None:
    # -S: no site-packages and none of their start-up imports; only what the import itself pulls in.
    code = (
        "import sys; before = set(sys.modules); import otelkv.kubevirt; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, check=True, capture_output=True, text=True)
    loaded = set(out.stdout.split())
    ours = {m for m in loaded if m == "otelkv" or m.startswith("otelkv.")}
    assert "otelkv.kubevirt.tracker" in ours
    others = {m.split(".")[0] for m in loaded - ours}
    assert others <= set(sys.stdlib_module_names) | {"_ast"}, others - set(sys.stdlib_module_names)
    assert not others & set(FORBIDDEN), others & set(FORBIDDEN)
    assert "otelkv.kubevirt.doc" not in ours


def test_parsing_doc_table_is_generated_from_the_rules() -> None:
    path = ROOT / "docs" / "parsing.md"
    text = path.read_text()
    assert doc.rewrite(text) == text, "docs/parsing.md is out of date: run make docs"
    assert doc.main([str(path), "--check"]) == 0
    table = doc.render_table()
    assert len(table.splitlines()) == len(RULES) + 2
    for rule in RULES:
        assert rule.format.replace("|", "\\|") in table


def test_doc_check_fails_on_a_stale_table(tmp_path: Path) -> None:
    stale = tmp_path / "parsing.md"
    stale.write_text(f"intro\n{doc.BEGIN}\n| old |\n{doc.END}\nrest\n")
    assert doc.main([str(stale), "--check"]) == 1
    assert doc.main([str(stale)]) == 0
    assert doc.main([str(stale), "--check"]) == 0
    assert stale.read_text().startswith("intro\n") and stale.read_text().endswith("rest\n")
    with pytest.raises(ValueError, match="markers"):
        doc.rewrite("no markers here")


def test_vendored_catalogue_matches_shared_when_present() -> None:
    shared = ROOT.parent / "shared" / "kubevirt" / "events.yaml"
    vendored = ROOT / "tests" / "data" / "kubevirt-events.yaml"
    if not shared.exists():
        pytest.skip(f"{shared} is not beside this checkout; the vendored copy is used as is")
    assert shared.read_bytes() == vendored.read_bytes(), "refresh tests/data/kubevirt-events.yaml"


def test_public_names_have_docstrings() -> None:
    for name in kv.__all__:
        obj = getattr(kv, name)
        if callable(obj):
            assert obj.__doc__, name
