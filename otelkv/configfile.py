"""Reading otelkv's YAML file: text in any encoding users hand over, YAML errors as one line with
the file and line, ``${env:NAME}`` expanded in every string; and the store check ``serve`` and
``check-config`` share."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otelkv import notation
from otelkv.config import ConfigError
from otelkv.textfile import TextError, decode

log = logging.getLogger(__name__)


def read_file(path: Path, environ: Mapping[str, str], *, offline: bool) -> dict[str, Any]:
    """The mapping in ``path``, expanded; ConfigError naming the file (and line) when it is not one."""
    import yaml  # noqa: PLC0415 - only a configuration with a file needs it (check_store_path lives here too)

    try:
        loaded = yaml.safe_load(decode(path.read_bytes(), str(path)))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from error
    except TextError as error:
        raise ConfigError(str(error)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: must be a mapping of keys, got {type(loaded).__name__}")
    expanded: dict[str, Any] = expand(loaded or {}, environ, "", offline=offline)
    return expanded


def expand(data: Any, environ: Mapping[str, str], key: str, *, offline: bool,
           seen: dict[int, Any] | None = None) -> Any:  # fmt: skip
    """``data`` with ``${env:NAME}`` replaced in every string, errors naming the key; keys must be strings.

    A node YAML shares through an alias (``*name``) is expanded once (``seen``): nested aliases
    would otherwise make billions of copies of a few lines.
    """
    seen = {} if seen is None else seen
    if isinstance(data, dict | list) and id(data) in seen:
        return seen[id(data)]
    result: Any = data
    if isinstance(data, dict):
        for name in data:
            if not isinstance(name, str):
                raise ConfigError(f"{key}{name!r}: keys must be strings (quote it)")
        result = {k: expand(v, environ, f"{key}{k}.", offline=offline, seen=seen) for k, v in data.items()}
    elif isinstance(data, list):
        result = [expand(v, environ, f"{key.rstrip('.')}[{i}].", offline=offline, seen=seen)
                  for i, v in enumerate(data)]  # fmt: skip
    elif isinstance(data, str):
        try:
            return notation.expand(data, environ)
        except notation.MissingVariable as missing:
            if offline:
                return data
            raise ConfigError(f"{key.rstrip('.')}: environment variable {missing.name!r} is not set") from None
    if isinstance(data, dict | list):
        seen[id(data)] = result
    return result


def check_store_path(store_path: str) -> None:
    """What ``serve`` needs of the store: an SQLite file it can write, or a directory to make it in."""
    path = Path(store_path)
    if path.exists():
        if not path.is_file() or not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(f"delivery.store_path: cannot open {store_path!r}: not a file otelkv can write")
        import sqlite3  # noqa: PLC0415 - only a configuration with a store needs it

        from otelkv.salvage import is_damage, was_a_store  # noqa: PLC0415

        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                db.execute("PRAGMA schema_version").fetchone()
            finally:
                db.close()
        except sqlite3.Error as error:
            if is_damage(error) and was_a_store(store_path):  # serve sets it aside (otelkv.salvage): say so
                log.warning(
                    "delivery.store_path: %r is damaged or not an SQLite file (%s); serve will move it aside as "
                    "%s.damaged-<time> and start a fresh store", store_path, error, store_path,
                )  # fmt: skip
                return
            raise ConfigError(f"delivery.store_path: cannot open {store_path!r}: {error}") from None
        return
    parent = path.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"delivery.store_path: cannot open {store_path!r}: no writable directory {str(parent)!r}")
