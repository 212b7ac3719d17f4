"""The SQLite file behind the store, kept usable: opened in WAL mode and checked page by page, a
damaged file set aside and replaced by a fresh one holding what could be read of it
(:mod:`otelkv.delivery.salvage`), a marker beside it that tells a store emptied behind otelkv's
back from a new one, and every read and write run through one place that counts failures and
turns a failed write into :class:`~otelkv.errors.StoreUnavailable`. The store is locked for the
life of the object (:class:`otelkv.delivery.files.StoreLock`: one process per store) and its
files are ``0600``.

The counts (records, bytes, batches, dead letters) are read once at open and then kept as
batches come and go, so the marker never counts rows under the lock.

:class:`otelkv.delivery.store.Store` builds the queue and the dead letters on it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from otelkv.delivery import salvage
from otelkv.delivery.files import StoreLock, create_private
from otelkv.delivery.salvage import is_damage
from otelkv.errors import StoreUnavailable
from otelkv.telemetry.streak import FailureStreak

__all__ = ["MARK_EVERY", "StoreFile"]

log = logging.getLogger("otelkv.delivery.store")
_T = TypeVar("_T")
_COUNTS: Final = (
    "SELECT COALESCE(SUM(records), 0), COALESCE(SUM(bytes), 0), COUNT(*), "
    "(SELECT COUNT(*) FROM dead_letters) FROM queue"
)
#: Seconds between two writes of the marker while batches come and go.
MARK_EVERY: Final = 5.0

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


class StoreFile:
    """Thread-safe: one connection behind a lock (SQLite serialises writers anyway).

    Opening checks every page (``PRAGMA quick_check``); a damaged file, found then or by any
    later read or write, is set aside and replaced by a fresh store holding what could be read of
    it (:mod:`otelkv.delivery.salvage`), counted in :attr:`damaged` and logged at error.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        durable: bool = True,
        retry_after: float = 5.0,
    ) -> None:
        self._durable = durable
        self._retry_after = retry_after
        self.path = str(path)
        self._file_lock = StoreLock(self.path)  # first: raises StoreLocked while another process has it
        try:
            self._start()
        except BaseException:
            self._file_lock.release(remove=True)
            raise

    def _start(self) -> None:
        self._lock = threading.Lock()
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
        self._records = self._bytes = self._batches = self._dead = 0
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
        create_private(path)  # SQLite gives -wal and -shm the database file's mode
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
            counts = db.execute(_COUNTS).fetchone()
        except BaseException:
            db.close()
            raise
        self._records, self._bytes, self._batches, self._dead = (int(n) for n in counts)
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
        salvage.Marker(self._generation, self._records, self._batches, self._dead).write(self.path)

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

    def close(self) -> None:
        """Write the marker, close the database; safe twice."""
        with self._lock:
            if self._file_lock.held:
                self._mark()
                self._db.close()
            self._file_lock.release()
