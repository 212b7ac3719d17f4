"""The on-disk queue and the dead letters, in one SQLite file (WAL mode).

A well-tested engine instead of a hand-made file format: a batch is acknowledged to the
collector once its INSERT committed (with ``fsync: durable``, SQLite's ``synchronous=FULL``, once
it is on disk). Entries leave in insertion order, so the order of a stream is kept. Each entry
carries a CRC32 of its payload: an entry that does not match, or does not decode, is moved to
the dead letters as corrupt — counted and logged, never blocking the queue.

A write that fails (a full disk: ``database or disk is full``; an I/O error) raises
:class:`StoreUnavailable`, a :class:`Retryable`: nothing is acknowledged, the collector keeps the
data and retries. The failure is counted (:attr:`Store.errors`), logged once a streak (then
rate-limited), and :meth:`Store.refusing` says so to readiness until a write succeeds again.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from otelkv.delivery import salvage
from otelkv.delivery.salvage import is_damage
from otelkv.errors import QueueFull, StoreUnavailable
from otelkv.telemetry.streak import FailureStreak

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_COUNTS: Final = "SELECT COALESCE(SUM(records), 0), COALESCE(SUM(bytes), 0) FROM queue"
#: Seconds between two writes of the marker while batches come and go.
_MARK_EVERY: Final = 5.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enqueued REAL NOT NULL,
    records INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    failed REAL NOT NULL,
    records INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    error TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued batch: an encoded ExportLogsServiceRequest."""

    id: int
    enqueued: float
    records: int
    payload: bytes
    intact: bool


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A batch given up on, with why."""

    id: int
    failed: float
    records: int
    bytes: int
    error: str


class Store:
    """Thread-safe: one connection behind a lock (SQLite serialises writers anyway).

    Opening checks every page (``PRAGMA quick_check``); a damaged file, found then or by any
    later read or write, is set aside and replaced by a fresh store holding what could be read of
    it (:mod:`otelkv.delivery.salvage`), counted in :attr:`damaged` and logged at error.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int,
        max_records: int,
        max_dead_letters: int,
        durable: bool = True,
        retry_after: float = 5.0,
    ) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._durable = durable
        self._max_bytes = max_bytes
        self._max_records = max_records
        self._max_dead = max_dead_letters
        self._retry_after = retry_after
        self.corrupt = 0
        self.dropped_dead_letters = 0
        #: Failed reads and writes of the database (a full disk, an I/O error), counted.
        self.errors = 0
        #: Damaged stores set aside, and stores found new where the marker expected records.
        self.damaged = 0
        #: Where damaged stores were moved (for inspection).
        self.set_aside: list[str] = []
        self._write_error: str | None = None
        self._streak = FailureStreak(log, f"writing the store {self.path}", level=logging.ERROR)
        self._arrived = threading.Condition(self._lock)
        self._generation = ""
        self._marked = 0.0
        self._records = self._bytes = 0
        #: The connection was closed by a replacement that failed half-way: open again first.
        self._closed = False
        try:
            self._db = self._open(self.path, check=True)
        except sqlite3.DatabaseError as error:
            if not is_damage(error):
                raise
            if not salvage.was_a_store(self.path):
                raise sqlite3.DatabaseError(
                    f"{error}: not an otelkv store (no {self.path}.state beside it, no SQLite header); left untouched"
                ) from error
            try:
                self._db = self._replace(error)
            except OSError as failed:  # a read-only volume: nothing could work
                raise sqlite3.DatabaseError(f"{error}, and it cannot be replaced: {failed}") from failed
            except sqlite3.Error as failed:  # no room for the copy: come up refusing, try again later
                self._db = sqlite3.connect(":memory:", check_same_thread=False)
                self._db.close()
                self._write_error = f"the store is damaged and there is no room to replace it yet ({failed})"
                log.error(
                    "the store %s is damaged (%s) and cannot be replaced yet: %s",
                    self.path,
                    error,
                    failed,
                    extra={"store": self.path},
                )
        self._mark()

    def _open(self, path: str, *, check: bool) -> sqlite3.Connection:
        """Connect, make the schema, learn the generation and the counts; with ``check``, check the
        pages first and compare a new store with the marker (a replacement after damage is not)."""
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
            new = db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'queue'").fetchone()[0] == 0
            if check and not new:
                salvage.check(db)
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            if row is None:
                if new and check:
                    self._expected_but_new()
                self._generation = uuid.uuid4().hex
                db.execute("INSERT INTO meta (key, value) VALUES ('generation', ?)", (self._generation,))
            else:
                self._generation = str(row[0])
            records, size = db.execute(_COUNTS).fetchone()
        except BaseException:
            db.close()
            raise
        self._records, self._bytes = int(records), int(size)
        return db

    def _expected_but_new(self) -> None:
        """A new store where the marker knew another: emptied or replaced behind otelkv's back."""
        marker = salvage.Marker.read(self.path)
        if marker is None:
            return
        if marker.records or marker.dead_letters:
            self.damaged += 1
            log.error(
                "the store %s is new or empty, but held %d queued records (%d batches) and %d dead letters "
                "at last count (generation %s): they are lost",
                self.path,
                marker.records,
                marker.batches,
                marker.dead_letters,
                marker.generation,
                extra={"store": self.path},
            )
        else:
            log.warning(
                "the store %s is new; the one otelkv used before (generation %s, empty at last count) is gone",
                self.path,
                marker.generation,
                extra={"store": self.path},
            )

    def _replace(self, error: BaseException) -> sqlite3.Connection:
        """Build a fresh store beside the damaged one holding what can be read of it; only then set
        the damaged one aside and put the fresh one in its place. A failure before that (no room
        for the copy) leaves the damaged store where it was, to be tried again."""
        with contextlib.suppress(sqlite3.Error, AttributeError):
            self._db.close()
        self._closed = True
        fresh = f"{self.path}.salvage"
        salvage.remove(fresh)
        try:
            db = self._open(fresh, check=False)
            try:
                kept = salvage.salvage(self.path, db)
            finally:
                db.close()
        except BaseException:
            salvage.remove(fresh)
            raise
        aside = salvage.move_aside(self.path)
        salvage.rename(fresh, self.path)
        db = self._open(self.path, check=False)
        self._closed = False
        self.damaged += 1
        self.set_aside.append(aside)
        log.error(
            "the store %s is damaged (%s): moved to %s for inspection and replaced by a fresh one; what "
            "could be read was kept: %d queued batches (%d records) and %d dead letters",
            self.path,
            error,
            aside,
            kept.batches,
            kept.records,
            kept.dead_letters,
            extra={"store": self.path, "set_aside": aside},
        )
        self._marked = 0.0
        return db

    def _mark(self, *, every: float = 0.0) -> None:
        """Write the marker beside the store (at most every ``every`` s); the lock held or at start."""
        now = time.monotonic()
        if self._marked and now - self._marked < every:
            return
        self._marked = now
        try:
            batches = self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
            dead = self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
        except sqlite3.Error:  # a hint only: the next read or write meets the trouble and handles it
            return
        salvage.Marker(self._generation, self._records, int(batches), int(dead)).write(self.path)

    def _run(self, operation: str, action: Callable[[], _T], *, write: bool = False) -> _T:
        """Run a read or write (the lock held). A damaged store is replaced once and the action run
        again on the fresh one; other database errors are counted and raised, a write's as
        :class:`StoreUnavailable`, logged once a streak; the first success after clears
        :meth:`refusing`."""
        replaced = False
        while True:
            try:
                if self._closed:  # a replacement failed half-way: the damaged store is still there
                    self._db = self._open(self.path, check=True)
                    self._closed = False
                result = action()
            except sqlite3.Error as error:
                with contextlib.suppress(sqlite3.Error):  # (a closed connection raises here too)
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                reason: BaseException = error
                if is_damage(error) and not replaced:
                    try:
                        self._db = self._replace(error)
                    except (OSError, sqlite3.Error) as failed:
                        reason = failed
                    else:
                        replaced = True
                        continue
                self.errors += 1
                if not write:
                    raise
                self._write_error = str(reason)
                self._streak.failed(f"{operation}: {reason}", operation=operation)
                raise StoreUnavailable(
                    f"queue store cannot be written ({reason}): try again later", retry_after=self._retry_after
                ) from error
            if write and self._write_error is not None:
                self._write_error = None
                self._streak.recovered()
            return result

    # -- the queue ---------------------------------------------------------------------------------

    def put(self, payload: bytes, records: int) -> int:
        """Append a batch and read it back; raises :class:`QueueFull` when it would pass a bound,
        :class:`StoreUnavailable` when it cannot be written (nothing is acknowledged then)."""
        crc = zlib.crc32(payload)

        def insert() -> int:
            cursor = self._db.execute(
                "INSERT INTO queue (enqueued, records, bytes, crc, payload) VALUES (?, ?, ?, ?, ?)",
                (time.time(), records, len(payload), crc, payload),
            )
            entry_id = cursor.lastrowid
            assert entry_id is not None
            back = self._db.execute("SELECT crc, length(payload) FROM queue WHERE id = ?", (entry_id,)).fetchone()
            if back != (crc, len(payload)):  # never acknowledge what cannot be read back
                raise salvage.Damaged(f"batch {entry_id} does not read back as written")
            return entry_id

        with self._lock:
            if self._bytes + len(payload) > self._max_bytes or self._records + records > self._max_records:
                raise QueueFull(
                    f"queue full ({self._records} records, {self._bytes} bytes queued): try again later",
                    retry_after=self._retry_after,
                )
            entry_id = self._run("put", insert, write=True)
            self._records += records
            self._bytes += len(payload)
            self._arrived.notify_all()
            self._mark(every=_MARK_EVERY)
            return entry_id

    def oldest(self) -> Entry | None:
        """The first batch in the queue, if any (it stays there until removed)."""
        with self._lock:
            row = self._run(
                "read",
                lambda: self._db.execute(
                    "SELECT id, enqueued, records, crc, payload FROM queue ORDER BY id LIMIT 1"
                ).fetchone(),
            )
        if row is None:
            return None
        entry_id, enqueued, records, crc, payload = row
        payload = bytes(payload) if payload is not None else b""
        return Entry(entry_id, enqueued, records, payload, zlib.crc32(payload) == crc)

    def remove(self, entry_id: int) -> None:
        """Delete a delivered batch."""

        def delete() -> tuple[int, int] | None:
            row = self._db.execute("SELECT records, bytes FROM queue WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                return None
            self._db.execute("DELETE FROM queue WHERE id = ?", (entry_id,))
            return int(row[0]), int(row[1])

        with self._lock:
            row = self._run("remove", delete, write=True)
            if row is not None:
                self._records -= row[0]
                self._bytes -= row[1]
            self._mark(every=_MARK_EVERY)

    def wait(self, timeout: float) -> None:
        """Sleep until a batch is put or ``timeout`` passes."""
        with self._lock:
            self._arrived.wait(timeout)

    def stats(self) -> tuple[int, int, float | None]:
        """Queued records, queued bytes, and the age in seconds of the oldest batch."""
        with self._lock:
            row = self._run("read", lambda: self._db.execute("SELECT MIN(enqueued) FROM queue").fetchone())
            oldest = None if row[0] is None else max(0.0, time.time() - row[0])
            return self._records, self._bytes, oldest

    def full(self) -> bool:
        """At a bound (readiness is false then)."""
        with self._lock:
            return self._bytes >= self._max_bytes or self._records >= self._max_records

    def refusing(self) -> str | None:
        """Why new batches are refused now (readiness is false then), or None."""
        if self.full():
            return "queue full"
        error = self._write_error
        return None if error is None else f"queue store cannot be written: {error}"

    @property
    def write_failing(self) -> bool:
        """The last write failed, and none succeeded since."""
        return self._write_error is not None

    def probe(self) -> None:
        """Write a little (the time, in ``meta``) to learn whether the store can be written again."""
        with self._lock:
            self._run(
                "probe",
                lambda: self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)", (repr(time.time()),)
                ),
                write=True,
            )

    # -- dead letters --------------------------------------------------------------------------

    def dead_letter(self, payload: bytes, records: int, error: str, *, entry_id: int | None = None) -> None:
        """Keep a batch that was given up on (and take it off the queue, if it came from there)."""
        with self._lock:
            removed, dropped = self._run(
                "dead_letter", lambda: self._dead_letter(payload, records, error, entry_id), write=True
            )
            self._records -= removed[0]
            self._bytes -= removed[1]
            self.dropped_dead_letters += dropped

    def _dead_letter(
        self,
        payload: bytes,
        records: int,
        error: str,
        entry_id: int | None,
    ) -> tuple[tuple[int, int], int]:
        """One transaction: the dead letter in, the entry out, the oldest beyond the bound gone."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO dead_letters (failed, records, bytes, error, payload) VALUES (?, ?, ?, ?, ?)",
                (time.time(), records, len(payload), error, payload),
            )
            removed = (0, 0)
            if entry_id is not None:
                row = self._db.execute("SELECT records, bytes FROM queue WHERE id = ?", (entry_id,)).fetchone()
                if row is not None:
                    self._db.execute("DELETE FROM queue WHERE id = ?", (entry_id,))
                    removed = (row[0], row[1])
            over = self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] - self._max_dead
            if over > 0:  # bounded: the oldest go, counted
                self._db.execute(
                    "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT ?)", (over,)
                )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise
        return removed, max(0, over)

    def skip_corrupt(self, entry: Entry) -> None:
        """Move an entry that fails its CRC or no longer decodes to the dead letters, counted (once,
        however often a full disk makes the move fail)."""
        self.dead_letter(entry.payload, entry.records, "corrupt queue entry", entry_id=entry.id)
        self.corrupt += 1

    def dead_letters(self) -> list[DeadLetter]:
        """The dead letters, oldest first."""
        with self._lock:
            rows = self._run(
                "read",
                lambda: self._db.execute(
                    "SELECT id, failed, records, bytes, error FROM dead_letters ORDER BY id"
                ).fetchall(),
            )
        return [DeadLetter(*row) for row in rows]

    def dead_letter_payload(self, letter_id: int) -> bytes | None:
        """The batch of one dead letter."""
        with self._lock:
            row = self._run(
                "read",
                lambda: self._db.execute("SELECT payload FROM dead_letters WHERE id = ?", (letter_id,)).fetchone(),
            )
        return None if row is None else bytes(row[0])

    def forget_dead_letter(self, letter_id: int) -> None:
        """Delete one dead letter (after it was replayed)."""
        with self._lock:
            self._run(
                "forget", lambda: self._db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,)), write=True
            )

    def close(self) -> None:
        """Write the marker, close the database; safe twice."""
        with self._lock:
            self._mark()
            self._db.close()
