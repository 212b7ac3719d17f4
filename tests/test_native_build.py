"""Building the compiled core (issue 13 item 2): ``pip install`` never fails for want of it.

Each test installs otelkv into a fresh virtualenv the way a user would (from the sdist, or
editable from a copy of the tree), with a working compiler, with broken ones, and with
``OTELKV_NO_EXTENSIONS=1``, and asks the installed otelkv which core it runs. Offline and quick:
``--no-deps --no-build-isolation``, with setuptools and the dependencies seen from the test
environment through a ``.pth`` file (they are not what is tested).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

from otelkv import __version__
from tests.conftest import ROOT, why_no_compiler

#: What the installed otelkv reports: its choice, and where the core it loaded lives.
_REPORT = """
import json
from otelkv.otlp import native
chosen = native.choice()
print(json.dumps([chosen.describe(), getattr(chosen.module, "__file__", None)]))
"""
NOT_BUILT = "python (reference; no compiled core: No module named 'otelkv.otlp._wire')"
NOT_BUILT_VERSION = f"otelkv {__version__} (core: python; no compiled core: No module named 'otelkv.otlp._wire')"
#: The build's environment: none of the test run's compiler or otelkv settings.
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("OTELKV_") and k not in ("CC", "LDSHARED")}

needs_compiler = pytest.mark.skipif(why_no_compiler() is not None, reason=f"cannot build here: {why_no_compiler()}")


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """otelkv's sdist, built from this tree by setuptools' own build backend."""
    out = tmp_path_factory.mktemp("sdist")
    build = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", build, str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return out / done.stdout.splitlines()[-1]


class Venv:
    """A fresh virtualenv (no pip of its own) that sees the test environment's packages after its own."""

    def __init__(self, path: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
        self.path = path
        self.python = path / "bin" / "python"
        purelib = subprocess.run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        outside = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
        Path(purelib, "otelkv-test-deps.pth").write_text("\n".join(sorted(outside)) + "\n")

    def pip_install(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``pip install --no-deps --no-build-isolation ARGS`` into this venv, offline, with ``env`` set."""
        command = [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(self.python),
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-cache-dir",
            "--verbose",
            *args,
        ]
        return subprocess.run(
            command, capture_output=True, text=True, env={**BASE_ENV, **env}, cwd=self.path, timeout=300, check=False
        )

    def report(self, **env: str) -> tuple[str, str | None]:
        """(description, the core's file) as the installed otelkv decides them, with ``env`` set."""
        done = subprocess.run(
            [self.python, "-c", _REPORT],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**BASE_ENV, **env},
            cwd=self.path,
        )
        description, where = json.loads(done.stdout)
        return description, where

    def version(self, **env: str) -> str:
        done = subprocess.run(
            [self.path / "bin" / "otelkv", "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**BASE_ENV, **env},
            cwd=self.path,
        )
        return done.stdout.strip()


def test_the_sdist_carries_what_a_build_needs(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"setup.py", "pyproject.toml", "README.md", "otelkv/otlp/_wire.c", "otelkv/otlp/native.py"} <= names
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "otelkv").rglob("*") if p.suffix in (".c", ".h")}
    assert sources and sources <= names  # every C source and header of the core
    assert not [n for n in names if n.endswith((".so", ".pyd", ".o"))]  # nothing built on this machine


@needs_compiler
def test_install_with_a_compiler_builds_and_runs_the_native_core(sdist: Path, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv")
    done = venv.pip_install(str(sdist))
    assert done.returncode == 0, done.stderr
    description, where = venv.report()
    assert description == "native (otelkv.otlp._wire)"
    assert where is not None and Path(where).is_relative_to(venv.path)  # the installed one, not this tree's
    assert not list(Path(where).parent.glob("*.c"))  # the wheel carries the built module, not its source
    assert venv.version() == f"otelkv {__version__} (core: native)"
    # at run time, OTELKV_NO_EXTENSIONS=1 leaves the installed core alone
    assert venv.report(OTELKV_NO_EXTENSIONS="1") == ("python (reference; OTELKV_NO_EXTENSIONS=1)", None)
    assert venv.version(OTELKV_NO_EXTENSIONS="1") == f"otelkv {__version__} (core: python; OTELKV_NO_EXTENSIONS=1)"


@pytest.mark.parametrize(
    ("env", "warning"),
    [
        ({"CC": "false"}, "CompileError"),  # a compiler that fails
        ({"CC": "/nonexistent/cc"}, "No such file or directory"),  # no compiler at all
        ({"CC": '"gcc'}, "ValueError"),  # a $CC setuptools cannot split: optional=True alone failed the install
        ({"OTELKV_NO_EXTENSIONS": "1"}, "OTELKV_NO_EXTENSIONS is set"),  # asked not to build
    ],
    ids=["failing-compiler", "no-compiler", "unparsable-CC", "OTELKV_NO_EXTENSIONS=1"],
)
def test_install_without_a_working_compiler_installs_the_reference_path(
    sdist: Path, tmp_path: Path, env: dict[str, str], warning: str
) -> None:
    venv = Venv(tmp_path / "venv")
    done = venv.pip_install(str(sdist), **env)
    assert done.returncode == 0, done.stderr  # never a failed install
    [said] = [line for line in (done.stdout + done.stderr).splitlines() if "otelkv.otlp._wire not built" in line]
    assert warning in said and said.endswith("otelkv will run its pure-Python reference path")
    assert venv.report() == (NOT_BUILT, None)
    assert venv.version() == NOT_BUILT_VERSION


def _copy_tree(to: Path) -> Path:
    """What an editable install works on: the build files and the package, nothing built."""
    to.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, to / name)
    shutil.copytree(ROOT / "otelkv", to / "otelkv", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return to


@needs_compiler
def test_editable_install_builds_the_core_in_place_and_no_extensions_removes_it(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path / "tree")
    venv = Venv(tmp_path / "venv")
    assert venv.pip_install("-e", str(tree)).returncode == 0
    description, where = venv.report()
    assert description == "native (otelkv.otlp._wire)"
    assert where is not None and Path(where).parent == tree / "otelkv" / "otlp"  # where `import` finds it
    # Rebuilt with OTELKV_NO_EXTENSIONS=1: the core an earlier build left in the tree goes too.
    done = venv.pip_install("-e", str(tree), OTELKV_NO_EXTENSIONS="1")
    assert done.returncode == 0, done.stderr
    assert not list((tree / "otelkv" / "otlp").glob("_wire*.so"))
    assert venv.report() == (NOT_BUILT, None)
