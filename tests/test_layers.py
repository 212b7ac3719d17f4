"""The house keeps its plan: no import runs upward between the layers of tests/layers.py, no circle
between modules, every module in a layer, and docs/architecture.md's map lists the same rooms."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.layers import LAYERS, circles, edges, layer_of, modules, upward


def test_no_import_runs_upward() -> None:
    assert upward(edges(modules(ROOT, "otelkv"))) == []


def test_no_circle_between_modules() -> None:
    assert circles(edges(modules(ROOT, "otelkv"))) == []


def test_every_package_and_top_level_module_is_a_layer() -> None:
    found = modules(ROOT, "otelkv")
    rooms = {".".join(name.split(".")[:2]) for name in found}
    assert rooms == set(LAYERS), "a new package or top-level module needs its place in tests/layers.py LAYERS"


def test_kubevirt_imports_only_itself_and_the_standard_library() -> None:
    found = modules(ROOT, "otelkv")
    outside = [
        e
        for e in edges(found)
        if e.importer.startswith("otelkv.kubevirt") and not e.imported.startswith("otelkv.kubevirt")
    ]
    assert outside == []
    for name, path in found.items():
        if not name.startswith("otelkv.kubevirt"):
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(?:from|import) ([a-zA-Z_][\w]*)", line)
            if m and m.group(1) not in ("otelkv", "__future__"):
                assert m.group(1) in sys.stdlib_module_names, f"{name}: {line.strip()}"


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_checks_catch_a_planted_upward_import_and_circle(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "otelkv/__init__.py": "",
            "otelkv/errors.py": "",
            "otelkv/kubevirt/__init__.py": "",
            "otelkv/kubevirt/a.py": "from . import b\n",
            "otelkv/kubevirt/b.py": "def f():\n    from otelkv.kubevirt import a  # a lazy import counts\n",
            "otelkv/otlp/__init__.py": "",
            "otelkv/otlp/enrich.py": "from otelkv.kubevirt import a\n",
            "otelkv/config/__init__.py": "",
            "otelkv/config/load.py": "import otelkv.otlp.enrich\n",  # ground floor reaching up
        },
    )
    found = edges(modules(root, "otelkv"))
    assert upward(found) == ["otelkv.config.load:1 -> otelkv.otlp.enrich"]
    assert circles(found) == [["otelkv.kubevirt.a", "otelkv.kubevirt.b"]]
    assert layer_of("otelkv.otlp.enrich") < layer_of("otelkv.kubevirt.a") < layer_of("otelkv.config.load")


def test_architecture_map_lists_the_layers_in_order() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("<!-- rooms -->", 2)[1]
    listed = re.findall(r"^\| `(otelkv[\w./]*)`", table, flags=re.MULTILINE)
    expected = [
        f"{name.replace('.', '/')}/" if (ROOT / name.replace(".", "/")).is_dir() else f"{name.replace('.', '/')}.py"
        for name in LAYERS
        if name != "otelkv"
    ]
    assert listed == expected
