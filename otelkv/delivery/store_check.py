"""What ``serve`` needs of its store before it starts: an SQLite file it can write, or a directory
to make it in. ``check-config`` and ``dead-letter`` run the same check (:func:`otelkv.commands.preflight.preflight`)."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from otelkv.delivery.salvage import is_damage, was_a_store
from otelkv.errors import ConfigError

__all__ = ["check_store_path"]

log = logging.getLogger(__name__)


def check_store_path(store_path: str) -> None:
    """What ``serve`` needs of the store: an SQLite file it can write, or a directory to make it in."""
    path = Path(store_path)
    if path.exists():
        if not path.is_file() or not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(f"delivery.store_path: cannot open {store_path!r}: not a file otelkv can write")
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                db.execute("PRAGMA schema_version").fetchone()
            finally:
                db.close()
        except sqlite3.Error as error:
            if is_damage(error) and was_a_store(store_path):  # serve sets it aside (otelkv.delivery.salvage): say so
                log.warning(
                    "delivery.store_path: %r is damaged or not an SQLite file (%s); serve will move it aside as "
                    "%s.damaged-<time> and start a fresh store",
                    store_path,
                    error,
                    store_path,
                )
                return
            raise ConfigError(f"delivery.store_path: cannot open {store_path!r}: {error}") from None
        return
    parent = path.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"delivery.store_path: cannot open {store_path!r}: no writable directory {str(parent)!r}")
