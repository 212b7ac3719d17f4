"""Which enrichment core runs: the compiled one (``otelkv.otlp._wire``) or the Python reference."""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType

ABI_VERSION = 1


@cache
def core() -> ModuleType | None:
    """The compiled core, or None (not built, or ``OTELKV_NO_EXTENSIONS`` set)."""
    if os.environ.get("OTELKV_NO_EXTENSIONS", "") not in ("", "0"):
        return None
    try:
        from otelkv.otlp import _wire  # noqa: PLC0415 - optional
    except ImportError:
        return None
    return _wire if getattr(_wire, "ABI_VERSION", None) == ABI_VERSION else None
