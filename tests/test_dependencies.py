"""pyproject.toml declares what ``otelkv/`` imports: no more, no less (issue 17).

Every import of the package (read with :mod:`ast`, lazy ones inside functions too) that is not the
standard library or otelkv itself is mapped to the distribution that installed it
(:func:`importlib.metadata.packages_distributions`; where a namespace package such as ``google``
or ``opentelemetry`` is shared, by the distribution whose files hold the module). Each must be a
runtime dependency or an extra's, and each declared one must be imported; an extra's only inside
a function (otelkv imports without it). The image installs the extras the Makefile's
``IMAGE_EXTRAS`` names (requirements.lock holds them); without ``otlp-metrics``, a configuration
that sets ``metrics_otlp_endpoint`` is refused at start-up, naming the key and the extra.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT
from tests.test_packaging import lock_pins

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Extras that are not part of otelkv's running: the tools of the tests.
TOOL_EXTRAS = frozenset({"test"})


@dataclass(frozen=True, slots=True)
class Import:
    """``module`` imported at ``where`` (file:line); ``lazy`` when inside a function."""

    module: str
    where: str
    lazy: bool


def imports(package: Path) -> Iterator[Import]:
    """The absolute imports of every module under ``package`` that are not the standard library's
    or the package's own; ``from a.b import c`` gives ``a.b.c`` (a module or a name of ``a.b``)."""
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        lazy: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lazy |= {id(inner) for inner in ast.walk(node) if inner is not node}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top != package.name:
                    yield Import(name, f"{path.relative_to(package.parent)}:{node.lineno}", id(node) in lazy)


@cache
def _files(distribution: str) -> frozenset[str]:
    return frozenset(str(f) for f in metadata.distribution(distribution).files or ())


def owners(module: str) -> set[str]:
    """The distributions (canonical names) that installed ``module``: the one whose files hold the
    longest leading part of the dotted name (a name imported from a module counts as that module)."""
    candidates = metadata.packages_distributions().get(module.partition(".")[0], [])
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        path = "/".join(parts[:size])
        found = {
            str(canonicalize_name(d))
            for d in candidates
            if any(
                f == f"{path}.py" or f.startswith(f"{path}/") or re.fullmatch(rf"{re.escape(path)}\.[^/]+\.so", f)
                for f in _files(d)
            )
        }
        if found:
            return found
    return {str(canonicalize_name(d)) for d in candidates}


def _names(requirements: list[str]) -> set[str]:
    return {str(canonicalize_name(Requirement(r).name)) for r in requirements}


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """(runtime dependencies, {extra: its dependencies}) of pyproject.toml, the tools' extras left out."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    return _names(PYPROJECT["project"]["dependencies"]), {
        name: _names(deps) for name, deps in extras.items() if name not in TOOL_EXTRAS
    }


def compare(package: Path, runtime: set[str], extras: dict[str, set[str]]) -> list[str]:
    """What is wrong between the imports of ``package`` and the declared distributions, one line each."""
    problems = []
    used: dict[str, list[Import]] = {}
    for found in imports(package):
        owner = owners(found.module)
        if not owner:
            problems.append(f"{found.where}: {found.module} comes from no installed distribution")
        for distribution in owner:
            used.setdefault(distribution, []).append(found)
    optional = set().union(*extras.values()) - runtime
    for distribution, where in sorted(used.items()):
        first = f"{where[0].where} ({where[0].module})"
        if distribution not in runtime | optional:
            problems.append(f"{first}: imports {distribution}, which pyproject.toml does not declare")
        elif distribution in optional:
            problems += [f"{i.where}: imports {distribution} (an extra) at module level" for i in where if not i.lazy]
    problems += [
        f"pyproject.toml: {d} is declared and otelkv never imports it" for d in sorted((runtime | optional) - set(used))
    ]
    return problems


def test_otelkv_imports_what_pyproject_declares_and_no_more() -> None:
    runtime, extras = declared()
    assert compare(ROOT / "otelkv", runtime, extras) == []


def test_the_comparison_finds_an_undeclared_import_an_unused_dependency_and_an_eager_extra(tmp_path: Path) -> None:
    """A planted package: attrs (installed only through aiohttp), tabulate declared and not imported,
    the extra's exporter imported at module level."""
    package = tmp_path / "planted"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import os\nimport attrs\nfrom planted import x\nfrom google.rpc import status_pb2\n"
        "from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter\n"
        "def later():\n    import yaml\n"
    )
    extras = {"otlp-metrics": {"opentelemetry-exporter-otlp-proto-grpc"}}
    problems = compare(package, {"googleapis-common-protos", "pyyaml", "tabulate"}, extras)
    assert problems == [
        "planted/__init__.py:2 (attrs): imports attrs, which pyproject.toml does not declare",
        "planted/__init__.py:5: imports opentelemetry-exporter-otlp-proto-grpc (an extra) at module level",
        "pyproject.toml: tabulate is declared and otelkv never imports it",
    ]


def test_namespace_packages_map_to_the_distribution_that_holds_the_module() -> None:
    assert owners("google.rpc.status_pb2") == {"googleapis-common-protos"}
    assert owners("google.protobuf.message.DecodeError") == {"protobuf"}
    assert owners("google._upb._message") == {"protobuf"}
    assert owners("opentelemetry.metrics.Observation") == {"opentelemetry-api"}
    assert owners("opentelemetry.exporter.prometheus") == {"opentelemetry-exporter-prometheus"}


def test_betas_have_an_upper_bound() -> None:
    """A pre-release line (0.x betas) changes its output between releases: pinned below the next."""
    for dependency in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(dependency)
        if any(s.version.startswith("0.") and "b" in s.version for s in requirement.specifier):
            assert any(s.operator in ("<", "<=", "~=", "==") for s in requirement.specifier), dependency


def image_extras() -> list[str]:
    found = re.search(r"^IMAGE_EXTRAS := (.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "Makefile: no IMAGE_EXTRAS"
    return found.group(1).split()


def test_the_lock_holds_the_extras_the_image_installs() -> None:
    """The image installs requirements.lock and has no pip afterwards: an extra it ships with is in
    the lock (``make lock`` passes IMAGE_EXTRAS to pip-compile)."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert image_extras() == ["otlp-metrics"]
    pins = lock_pins()
    header = (ROOT / "requirements.lock").read_text().split("\n\n")[0]
    for extra in image_extras():
        assert f"--extra={extra}" in header
        for dependency in extras[extra]:
            requirement = Requirement(dependency)
            version, _ = pins[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


#: A child otelkv in which the otlp-metrics extra is not installed.
_WITHOUT_EXTRA = """
import sys
from importlib.abc import MetaPathFinder

class Absent(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry.exporter.otlp" or name.startswith("opentelemetry.exporter.otlp."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
from otelkv.commands import main
sys.exit(main(sys.argv[1:]))
"""


def _otelkv_without_the_extra(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "otelkv.yaml"
    config.write_text(
        json.dumps({"metrics_otlp_endpoint": "127.0.0.1:9", "grpc_listen": "127.0.0.1:0", "http_listen": "127.0.0.1:0"})
    )
    argv = [a.replace("{config}", str(config)) for a in args]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA, *argv], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize("args", [("check-config", "{config}"), ("serve", "--config", "{config}")])
def test_metrics_otlp_endpoint_without_the_extra_is_refused_at_start_up(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = _otelkv_without_the_extra(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert "metrics_otlp_endpoint" in line and "pip install 'otelkv[otlp-metrics]'" in line, line


def test_check_config_offline_does_not_look_for_the_extra(tmp_path: Path) -> None:
    """``--offline`` checks a configuration for another machine: what is installed here does not count."""
    done = _otelkv_without_the_extra(tmp_path, "check-config", "--offline", "{config}")
    assert done.returncode == 0, done.stderr
    assert "metrics_otlp_endpoint: 127.0.0.1:9" in done.stdout
