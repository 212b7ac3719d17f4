"""The OpenTelemetry Collector's notation in otelkv's configuration.

- Durations as Go's ``time.ParseDuration`` reads them (``5s``, ``500ms``, ``1h30m``), beside plain
  numbers of seconds.
- Sizes with a unit (``16MiB``, ``512KiB``, ``1GB``), beside plain numbers of bytes.
- ``${env:NAME}`` and ``${NAME}`` in string values, replaced by the variable as the Collector's
  confmap does (``${env:NAME:-default}`` gives a default; ``$$`` is a literal ``$``). A variable
  that is not set is an error, unlike the Collector's empty string: a silent empty tenant or
  endpoint is worse than a refusal at start-up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B?|B)?", re.IGNORECASE)
_SIZE_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "ki": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "mi": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "gi": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
    "ti": 1024**4,
}
_REFERENCE: Final = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``1.5``, ``5s``, ``500ms``, ``1h30m``); ValueError when it is neither."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return finite(number)
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.removeprefix("+"))
    position, total = 0, 0.0
    while position < len(body):
        part = _DURATION_PART.match(body, position)
        if part is None:
            raise ValueError(f"not a duration (5s, 500ms, 1h30m or seconds): {text!r}")
        total += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
        position = part.end()
    if not body:
        raise ValueError(f"not a duration (5s, 500ms, 1h30m or seconds): {text!r}")
    return sign * total


def parse_size(text: str) -> int:
    """Bytes in ``text`` (``1048576``, ``16MiB``, ``512KiB``, ``1GB``); ValueError when it is neither."""
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"not a size (16MiB, 512KiB, 1GB or bytes): {text!r}")
    value = float(found.group(1)) * _SIZE_UNITS[(found.group(2) or "").lower()]
    if value != int(value):
        raise ValueError(f"not a whole number of bytes: {text!r}")
    return int(value)


def finite(value: float) -> float:
    """``value`` when it is a finite number; NaN, infinities (and ``1e400``, which is one) refused."""
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


class MissingVariable(KeyError):
    """``${env:NAME}`` names a variable that is not set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def expand(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with ``${env:NAME}``, ``${NAME}`` and ``${env:NAME:-default}`` replaced, ``$$`` → ``$``."""

    def one(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        name, default = found.group(1), found.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise MissingVariable(name)

    return _REFERENCE.sub(one, text)
