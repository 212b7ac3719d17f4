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

The dead letters are bounded by ``max_dead_letters`` and never evicted: at the bound a new one is
refused with :class:`DeadLettersFull` (counted in :attr:`Store.dead_letters_full`, logged once a
streak), and the sender keeps its batch in the queue instead (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from otelkv.delivery import salvage
from otelkv.delivery.store_file import MARK_EVERY, StoreFile
from otelkv.errors import QueueFull, StoreUnavailable
from otelkv.telemetry.streak import FailureStreak

__all__ = ["DeadLetter", "DeadLettersFull", "Entry", "Store", "read_dead_letters"]

log = logging.getLogger(__name__)


class DeadLettersFull(StoreUnavailable):
    """``dead_letter_max_entries`` dead letters are kept: no room for another until some are
    replayed. Nothing is evicted; the caller keeps the batch (the queue sender holds it)."""


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


class Store(StoreFile):
    """The queue and the dead letters on a :class:`~otelkv.delivery.store_file.StoreFile`."""

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
        self._max_bytes = max_bytes
        self._max_records = max_records
        self._max_dead = max_dead_letters
        self.corrupt = 0
        #: Dead letters refused because ``max_dead_letters`` were kept (never evicted instead).
        self.dead_letters_full = 0
        super().__init__(path, durable=durable, retry_after=retry_after)
        self._full_streak = FailureStreak(
            log, f"keeping dead letters in {self.path} (dead_letter_max_entries {max_dead_letters} reached)"
        )

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
            self._batches += 1
            self._arrived.notify_all()
            self._mark(every=MARK_EVERY)
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
                self._batches -= 1
            self._mark(every=MARK_EVERY)

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
        """Keep a batch that was given up on (and take it off the queue, if it came from there).

        Raises :class:`DeadLettersFull` when ``max_dead_letters`` are kept: nothing is evicted, the
        entry stays queued; :class:`StoreUnavailable` when the store cannot be written."""
        with self._lock:
            if self._dead >= self._max_dead:
                self.dead_letters_full += 1
                self._full_streak.failed(f"{self._dead} dead letters kept; replay or delete some")
                raise DeadLettersFull(
                    f"dead letters full ({self._dead} kept, delivery.dead_letter_max_entries {self._max_dead}): "
                    "replay them with `otelkv dead-letter replay`",
                    retry_after=self._retry_after,
                )
            removed = self._run("dead_letter", lambda: self._dead_letter(payload, records, error, entry_id), write=True)
            self._dead += 1
            if removed is not None:
                self._records -= removed[0]
                self._bytes -= removed[1]
                self._batches -= 1
            self._full_streak.recovered()
            self._mark(every=MARK_EVERY)

    def _dead_letter(self, payload: bytes, records: int, error: str, entry_id: int | None) -> tuple[int, int] | None:
        """One transaction: the dead letter in, the entry (if queued) out; the entry's size."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO dead_letters (failed, records, bytes, error, payload) VALUES (?, ?, ?, ?, ?)",
                (time.time(), records, len(payload), error, payload),
            )
            removed = None
            if entry_id is not None:
                row = self._db.execute("SELECT records, bytes FROM queue WHERE id = ?", (entry_id,)).fetchone()
                if row is not None:
                    self._db.execute("DELETE FROM queue WHERE id = ?", (entry_id,))
                    removed = (int(row[0]), int(row[1]))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise
        return removed

    def skip_corrupt(self, entry: Entry) -> None:
        """Move an entry that fails its CRC or no longer decodes to the dead letters, counted (once,
        however often a full disk makes the move fail). With the dead letters full it is deleted
        instead, logged at error: it can never be delivered, and holding it would stop the queue
        behind it (the one loss docs/reliability.md names)."""
        try:
            self.dead_letter(entry.payload, entry.records, "corrupt queue entry", entry_id=entry.id)
        except DeadLettersFull:
            self.remove(entry.id)
            log.error(
                "queue entry %d is corrupt and the dead letters are full: deleted (%d records, %d bytes)",
                entry.id,
                entry.records,
                len(entry.payload),
                extra={"store": self.path},
            )
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
            cursor = self._run(
                "forget", lambda: self._db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,)), write=True
            )
            self._dead -= max(0, cursor.rowcount)
            self._mark(every=MARK_EVERY)


def read_dead_letters(path: str) -> list[DeadLetter]:
    """The dead letters of the store at ``path``, oldest first, read without taking the store's
    lock (``otelkv dead-letter list`` beside a running ``serve``): a read-only connection, which
    in WAL mode sees the last committed state and never blocks or changes the writer's file.
    Raises :class:`sqlite3.Error` when the file cannot be read as a store."""
    db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id, failed, records, bytes, error FROM dead_letters ORDER BY id").fetchall()
    finally:
        db.close()
    return [DeadLetter(*row) for row in rows]
