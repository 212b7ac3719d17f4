"""A pytest plugin for ``make sanitize``: the tests call a compiled core built with AddressSanitizer
and UndefinedBehaviorSanitizer, from a directory of its own, never the in-place build.

``python -m pytest -p tests.sanitized_core --sanitized-core DIR`` puts ``DIR/otelkv/otlp`` first on
``otelkv.otlp.__path__``, so ``import otelkv.otlp._wire`` (:func:`otelkv.otlp.native.decide`, and
with it ``tests.conftest.compiled_core``) loads the sanitized module; the run stops before the
first test unless that module is the one loaded and the ASan runtime is in the process (it must
be preloaded: ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``, as the Makefile does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_MODULE = "otelkv.otlp._wire"
#: Where the sanitized module was loaded from, for the report header.
_LOADED = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--sanitized-core", metavar="DIR", help="build_lib of the sanitized build (make sanitize)")


def asan_loaded() -> bool:
    """Whether the AddressSanitizer runtime is mapped in this process."""
    maps = Path("/proc/self/maps")
    return maps.is_file() and "libasan" in maps.read_text()


def pytest_configure(config: pytest.Config) -> None:
    option = config.getoption("sanitized_core")
    if not option:
        raise pytest.UsageError("-p tests.sanitized_core needs --sanitized-core DIR (make sanitize)")
    directory = Path(option).resolve()
    if not asan_loaded():
        raise pytest.UsageError(
            "the ASan runtime is not loaded: run through `make sanitize` "
            "(LD_PRELOAD=$(gcc -print-file-name=libasan.so))"
        )
    if _MODULE in sys.modules:
        raise pytest.UsageError(f"{_MODULE} was imported before the sanitized build could be put first")
    import otelkv.otlp  # noqa: PLC0415 - only once the checks above passed
    from otelkv.otlp import native  # noqa: PLC0415

    otelkv.otlp.__path__.insert(0, str(directory / "otelkv" / "otlp"))
    chosen = native.decide({})
    loaded = Path(getattr(chosen.module, "__file__", "") or "")
    if chosen.module is None or not loaded.resolve().is_relative_to(directory):
        raise pytest.UsageError(
            f"the sanitized core is not the one loaded ({chosen.describe()}, {loaded}): was it built into {directory}?"
        )
    config.stash[_LOADED] = loaded


def pytest_report_header(config: pytest.Config) -> str:
    return f"sanitized core (ASan + UBSan): {config.stash[_LOADED]}"
