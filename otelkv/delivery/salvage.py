"""A damaged store: how to tell, set it aside, read back what can be read, and notice a lost one.

SQLite says a file is damaged with ``SQLITE_CORRUPT`` ("database disk image is malformed") or
``SQLITE_NOTADB`` ("file is not a database"). otelkv never crash-loops on one and never
acknowledges into one: the file (with its WAL) is renamed ``<store>.damaged-<UTC time>`` and
kept for inspection, a fresh store takes its place, and every queued batch and dead letter that
can still be read is copied into it, by id, so the queue keeps its order.

A store that was emptied or replaced behind otelkv's back (truncated to 0 bytes, deleted) looks
like a new one to SQLite. The *marker*, a small JSON file beside it (``<store>.state``), records
the store's generation and its last known counts, so such a loss is seen and logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

#: SQLite's primary result codes for a damaged file.
_DAMAGE_CODES: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
#: Rows copied per table at most, and the most ids probed past damaged pages (bounds the walk).
_MAX_PROBES: Final = 1_000_000
_TABLES: Final = {
    "queue": "id, enqueued, records, bytes, crc, payload",
    "dead_letters": "id, failed, records, bytes, error, payload",
}


class Damaged(sqlite3.DatabaseError):
    """The store's own check found damage (``PRAGMA quick_check`` did not answer ``ok``)."""


def is_damage(error: BaseException) -> bool:
    """Whether ``error`` says the database file is damaged (not full, locked or unopenable)."""
    if isinstance(error, Damaged):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.DatabaseError) and code is not None and code & 0xFF in _DAMAGE_CODES


_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


def was_a_store(path: str) -> bool:
    """Whether a damaged ``path`` is one otelkv may set aside: it has otelkv's marker beside it,
    or still starts as an SQLite database does. Anything else (a mistyped ``store_path`` naming
    the config file, a log) is not otelkv's to move."""
    if Marker.path_for(path).exists():
        return True
    try:
        with open(path, "rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def check(db: sqlite3.Connection) -> None:
    """Raise :class:`Damaged` unless SQLite's quick check of every page passes (O(size), at start)."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check(5)").fetchall()]
    if problems != ["ok"]:
        raise Damaged(f"quick_check: {'; '.join(problems)}")


def move_aside(path: str) -> str:
    """Rename the store and its WAL and shared-memory files; returns the new name of the store."""
    aside = f"{path}.damaged-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"
    rename(path, aside)
    return aside


def rename(path: str, to: str) -> None:
    """Rename a database file with its ``-wal`` and ``-shm`` files (those that exist)."""
    os.rename(path, to)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.rename(path + suffix, to + suffix)


def remove(path: str) -> None:
    """Delete a database file with its ``-wal`` and ``-shm`` files, if they exist."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


@dataclass(frozen=True, slots=True)
class Salvaged:
    """What could be read of a damaged store and was copied."""

    batches: int = 0
    records: int = 0
    dead_letters: int = 0


def salvage(damaged: str, into: sqlite3.Connection) -> Salvaged:
    """Copy every queued batch and dead letter readable in the file ``damaged`` into ``into``
    (one transaction, ids kept). Rows on damaged pages are stepped over: after a failed read the
    next ids are tried one by one, up to the highest id the file still names."""
    try:  # read-write, so that SQLite can read the file's WAL; a checkpoint on close keeps its content
        old = sqlite3.connect(damaged, isolation_level=None)
    except sqlite3.Error:
        return Salvaged()
    copied: dict[str, list[tuple[Any, ...]]] = {}
    try:
        for table, columns in _TABLES.items():
            copied[table] = list(_readable_rows(old, table, columns))
    finally:
        old.close()
    into.execute("BEGIN IMMEDIATE")
    try:
        for table, rows in copied.items():
            marks = ", ".join("?" * len(_TABLES[table].split(",")))
            into.executemany(f"INSERT OR IGNORE INTO {table} ({_TABLES[table]}) VALUES ({marks})", rows)
        into.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            into.execute("ROLLBACK")
        raise
    queue = copied.get("queue", [])
    return Salvaged(len(queue), sum(int(row[2]) for row in queue), len(copied.get("dead_letters", [])))


def _highest_id(db: sqlite3.Connection, table: str) -> int:
    for query in (f"SELECT MAX(id) FROM {table}", "SELECT seq FROM sqlite_sequence WHERE name = ?"):
        try:
            row = db.execute(query, (table,) if "?" in query else ()).fetchone()
        except sqlite3.Error:
            continue
        if row and row[0] is not None:
            return int(row[0])
    return 0


def _readable_rows(db: sqlite3.Connection, table: str, columns: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    highest = _highest_id(db, table)
    after, probes = 0, 0
    while probes < _MAX_PROBES:
        try:
            row = db.execute(f"SELECT {columns} FROM {table} WHERE id > ? ORDER BY id LIMIT 1", (after,)).fetchone()
        except sqlite3.Error:
            if after >= highest:
                break
            after += 1  # step over the id on the damaged page
            probes += 1
            continue
        if row is None:
            break
        rows.append(tuple(row))
        after = int(row[0])
    return rows


# -- the marker -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marker:
    """What otelkv last knew of its store: which one it was, and what it held."""

    generation: str
    records: int = 0
    batches: int = 0
    dead_letters: int = 0

    @staticmethod
    def path_for(store: str) -> Path:
        """The marker file of the store at ``store``."""
        return Path(f"{store}.state")

    @classmethod
    def read(cls, store: str) -> Marker | None:
        """The marker beside ``store``, or None if there is none (or it cannot be read)."""
        try:
            data = json.loads(cls.path_for(store).read_text())
            return cls(str(data["generation"]), int(data["records"]), int(data["batches"]), int(data["dead_letters"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, store: str) -> None:
        """Replace the marker atomically; a failure (a full disk) is ignored: it is a hint only."""
        path = self.path_for(store)
        temporary = path.with_name(path.name + ".tmp")
        data = {
            "generation": self.generation,
            "records": self.records,
            "batches": self.batches,
            "dead_letters": self.dead_letters,
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with contextlib.suppress(OSError):
            temporary.write_text(json.dumps(data) + "\n")
            os.replace(temporary, path)
