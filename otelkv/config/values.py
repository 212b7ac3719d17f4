"""The kinds of value a configuration key holds, and the checks they share.

A duration is a number of seconds or the Collector's notation (``5s``, ``500ms``); a size is a
number of bytes or a size with a unit (``16MiB``): :mod:`otelkv.config.convert` reads both.
"""

from __future__ import annotations

import os
from typing import Annotated, Final

from otelkv.errors import ConfigError

__all__ = ["Duration", "MiB", "Size", "host_port", "positive", "split_host_port"]

MiB: Final = 1024 * 1024
#: A number of seconds, or a duration in the Collector's notation (``5s``, ``500ms``).
Duration = Annotated[float, "duration"]
#: A number of bytes, or a size with a unit (``16MiB``).
Size = Annotated[int, "size"]


def positive(key: str, value: float) -> None:
    """ConfigError naming ``key`` unless ``value`` is greater than 0."""
    if value <= 0:
        raise ConfigError(f"{key}: must be greater than 0, got {value!r}")


def host_port(key: str, value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) as a pair; ConfigError naming ``key`` when it is not one."""
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        raise ConfigError(f"{key}: must be HOST:PORT, got {value!r}")
    if int(port) > 65535:
        raise ConfigError(f"{key}: port out of range (0-65535), got {value!r}")
    return host.strip("[]"), int(port)


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) as a pair; the value must have passed validation."""
    return host_port("address", value)


def missing(path: str) -> str:
    """Why ``path`` is not a file otelkv can read: none there, or something else (a device, a directory)."""
    return f"not a regular file {path!r}" if os.path.exists(path) else f"no such file {path!r}"
