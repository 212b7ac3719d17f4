"""Which enrichment core runs: the compiled ``otelkv.otlp._wire`` or the pure-Python reference.

The compiled core is optional (``pip install`` leaves it out where it does not build) and the
reference path is always there. The choice is made once per process, on first use, from
``OTELKV_NO_EXTENSIONS`` and whether the core imports with the ABI this code expects; nothing is
logged here: ``otelkv --version``, the "otelkv serving" log line and the ``otelkv_build_info``
metric report it. :func:`core` is cheap enough to call on every request.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Final

#: Set to anything but empty or ``0``: the reference path runs even where the core is installed
#: (setup.py reads it too, at build time: the core is not built).
NO_EXTENSIONS_ENV: Final = "OTELKV_NO_EXTENSIONS"
#: The compiled core's module.
MODULE: Final = "otelkv.otlp._wire"
#: The ``ABI_VERSION`` of the core this code calls; a core with another one is not used.
ABI_VERSION: Final = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """The core that runs: ``module`` (None for the reference path), and ``reason`` why not native."""

    module: ModuleType | None
    reason: str = ""

    @property
    def name(self) -> str:
        """``native`` or ``python`` (the ``core`` attribute of ``otelkv_build_info``)."""
        return "python" if self.module is None else "native"

    def describe(self) -> str:
        """``native (otelkv.otlp._wire)``, or ``python (reference; <why>)``."""
        return f"python (reference; {self.reason})" if self.module is None else f"native ({self.module.__name__})"


def disabled(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` sets ``OTELKV_NO_EXTENSIONS`` (to anything but empty or ``0``)."""
    return environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0")


def decide(environ: Mapping[str, str] | None = None) -> Choice:
    """Decide afresh from ``environ`` (default ``os.environ``): import the core, check its ABI."""
    environ = os.environ if environ is None else environ
    if disabled(environ):
        return Choice(module=None, reason=f"{NO_EXTENSIONS_ENV}={environ[NO_EXTENSIONS_ENV]}")
    try:
        module = importlib.import_module(MODULE)
    except Exception as error:  # not built, built for another Python, or failing in its init
        return Choice(module=None, reason=f"no compiled core: {error}")
    found = getattr(module, "ABI_VERSION", None)
    if found != ABI_VERSION:
        return Choice(
            module=None,
            reason=f"no compiled core: {MODULE} has ABI_VERSION {found!r}, "
            f"this otelkv calls {ABI_VERSION} (rebuild it: pip install .)",
        )
    return Choice(module=module)


_chosen: Choice | None = None


def choice() -> Choice:
    """This process's choice, decided on first use."""
    global _chosen  # noqa: PLW0603 - one decision per process, made lazily
    if _chosen is None:
        _chosen = decide()
    return _chosen


def core() -> ModuleType | None:
    """The compiled core to call, or None for the reference path."""
    chosen = _chosen if _chosen is not None else choice()
    return chosen.module


def description() -> str:
    """Which core runs, for people: ``native (otelkv.otlp._wire)`` or ``python (reference; <why>)``."""
    return choice().describe()


def select(chosen: Choice | None) -> Choice | None:
    """Make ``chosen`` this process's choice (None: decide again on next use); return the previous
    one. For tests, which run both paths in one process."""
    global _chosen
    previous, _chosen = _chosen, chosen
    return previous
