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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from otelkv.delivery.files import write_private
from otelkv.textfile import read_small

#: SQLite's primary result codes for a damaged file.
_DAMAGE_CODES: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
#: The most reads tried past damaged pages, per table (each probe doubles the ids it skips, so
#: this bounds the walk, not the ids: a store whose ids pass 2**62 is still read to its end).
_MAX_PROBES: Final = 10_000
#: The marker is a line of JSON of ~120 bytes: anything over this is not one.
MARKER_MAX_BYTES: Final = 64 * 1024
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
    (one transaction, ids kept), one row at a time: memory holds one payload, never the store.

    Rows are read in id order; after a read fails (a damaged page), the ids past it are probed
    with growing steps (1, 2, 4, … ids) until one reads, then the step is halved back down to the
    first id that reads, so only the rows on the damaged pages are lost, whatever the ids are."""
    try:  # read-write, so that SQLite can read the file's WAL; a checkpoint on close keeps its content
        old = sqlite3.connect(damaged, isolation_level=None)
    except sqlite3.Error:
        return Salvaged()
    counts = {"queue": [0, 0], "dead_letters": [0, 0]}
    into.execute("BEGIN IMMEDIATE")
    try:
        for table, columns in _TABLES.items():
            marks = ", ".join("?" * len(columns.split(",")))
            insert = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})"
            for row in readable_rows(old, table, columns):
                into.execute(insert, row)
                counts[table][0] += 1
                counts[table][1] += int(row[2])
        into.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            into.execute("ROLLBACK")
        raise
    finally:
        old.close()
    return Salvaged(counts["queue"][0], counts["queue"][1], counts["dead_letters"][0])


def _highest_id(db: sqlite3.Connection, table: str) -> int:
    for query in (f"SELECT MAX(id) FROM {table}", "SELECT seq FROM sqlite_sequence WHERE name = ?"):
        try:
            row = db.execute(query, (table,) if "?" in query else ()).fetchone()
        except sqlite3.Error:
            continue
        if row and row[0] is not None:
            return int(row[0])
    return 0


def readable_rows(db: sqlite3.Connection, table: str, columns: str) -> Iterator[tuple[Any, ...]]:
    """The rows of ``table`` that can be read, in id order, streamed (see :func:`salvage`)."""
    highest = _highest_id(db, table)
    probes = 0

    def readable(after: int) -> bool:
        nonlocal probes
        probes += 1
        try:
            db.execute(f"SELECT {columns} FROM {table} WHERE id > ? ORDER BY id LIMIT 1", (after,)).fetchone()
        except sqlite3.Error:
            return False
        return True

    after = 0
    while True:
        try:
            for row in db.execute(f"SELECT {columns} FROM {table} WHERE id > ? ORDER BY id", (after,)):
                after = int(row[0])
                yield tuple(row)
            return
        except sqlite3.Error:
            pass
        # ``after`` is the last id read; the read past it failed. Step over the damage, growing.
        bad, step = after, 1
        while not readable(after + step):
            bad = after + step
            if bad >= highest or probes >= _MAX_PROBES:
                return
            step *= 2
        good = after + step
        while good - bad > 1 and probes < _MAX_PROBES:  # back down to the first id past the damage
            middle = (bad + good) // 2
            if readable(middle):
                good = middle
            else:
                bad = middle
        after = good


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
        try:  # a hint only: a planted FIFO, /dev/zero or deep JSON must not stop the start
            data = json.loads(read_small(cls.path_for(store), MARKER_MAX_BYTES))
            return cls(str(data["generation"]), int(data["records"]), int(data["batches"]), int(data["dead_letters"]))
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return None

    def write(self, store: str) -> None:
        """Replace the marker atomically; a failure (a full disk) is ignored: it is a hint only."""
        data = {
            "generation": self.generation,
            "records": self.records,
            "batches": self.batches,
            "dead_letters": self.dead_letters,
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with contextlib.suppress(OSError):
            write_private(self.path_for(store), (json.dumps(data) + "\n").encode(), fsync=False)
