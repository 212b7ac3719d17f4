"""The tracker's migrations kept on disk beside the store, so a restart mid-migration keeps
what earlier events revealed (the source node, the start time, a summary already made).

A JSON file next to ``delivery.store_path`` (``<store_path>.migrations.json``, mode ``0600``),
written whole to a temporary file, fsynced and renamed over the old one (``os.replace``): a crash
leaves the old or the new file, never half of one. In ``otelkv serve`` a saver thread writes it
after a change (the end of a burst is saved without waiting for the next record), and at
shutdown; used without it, as records come in. Nothing is written while nothing changed.

How often: at most once per ``interval`` (1 s), and, once a save takes :data:`SLOW_SAVE` (50 ms,
about 4 MiB of state) or more, never sooner than :data:`SAVE_SHARE` times the last save took
after it — so saving takes at most a tenth of one core whatever the state's size. Except: after a
record that concluded a migration (its summary is made), the migrations alone are saved
:data:`CONCLUDED_GAP` (50 ms) after the last save (or SAVE_SHARE times what that takes), so that
a SIGKILL after the summary was delivered does not leave a saved tracker without the conclusion,
which the migration's later records would conclude again after the restart (a second summary,
on another record: seen in ``tests/test_failure_drills.py``). Measured (2
shared cores): 10,000 migrations with every string 253 characters, 11 MiB, take 0.15 s to save
(then saved every 1.5 s); 40,000 of them, 46 MiB, 0.7 s (every 7 s). A SIGKILL loses the
changes since the last save. Only taking the snapshot holds the tracker's lock (0.05 s of the
0.15 s for 11 MiB); serialising and writing it never hold up the requests meanwhile.

With a duplicate window to keep (:meth:`PersistentTracker.keep_window`), each save but those for
a conclusion writes it too (``window_state.py``): its keys are copied just before the
migrations' snapshot and written just after them, so the window on disk never names a delivered
record the saved migrations have not seen; a save happens when either changed. 50,000 keys
(2.3 MB) add 0.07-0.13 s to a save, so with a full default window the whole save comes every
1-1.3 s.

Reading it back is bounded: a file larger than :func:`max_state_bytes` is not read (parsing
takes about 2.8 times the file's size at its peak: 22 MiB of state, 62 MiB), nor one holding more
JSON values than :func:`state_budget` allows for ``enrich.max_migrations`` (16 MiB of ``[]``
took 464 MiB to parse: ``otelkv.delivery.json_budget``), and a file that is
unreadable, damaged (truncated, garbage, wrong types) or too large is logged in one line and
ignored: otelkv starts with an empty tracker rather than not at all.
"""

from __future__ import annotations

import json
import logging
import stat
import threading
import time
from collections.abc import Hashable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from otelkv.delivery.files import write_private
from otelkv.delivery.json_budget import loads_within
from otelkv.delivery.window_state import SavedWindow
from otelkv.kubevirt import MigrationEvent, MigrationObject, MigrationTracker, Tracked

log = logging.getLogger(__name__)

SUFFIX: Final = ".migrations.json"
#: The least bound on a state file read back, and the bytes allowed per migration above it
#: (10,000 migrations with every string at Kubernetes' 253-character name limit take 11 MiB).
MIN_STATE_BYTES: Final = 16 * 1024 * 1024
BYTES_PER_MIGRATION: Final = 1600
#: The structural tokens (``[``, ``{``, ``,``) a saved migration may take, with about half again as
#: margin: one with every field set, every fact fixed and concluded by a migration object's key
#: from a cluster takes 34. :func:`state_budget` bounds a file read back by it.
TOKENS_PER_MIGRATION: Final = 48
MIN_TOKENS: Final = 4096
#: After a save that took t seconds (t >= SLOW_SAVE: a large state), the next waits SAVE_SHARE x t.
SAVE_SHARE: Final = 10.0
SLOW_SAVE: Final = 0.05
#: After a record concluded a migration, the saver writes once this long has passed since the last
#: save (instead of ``interval``), unless the state is large (its pause is longer than ``interval``).
CONCLUDED_GAP: Final = 0.05


def state_path(store_path: str) -> Path:
    """Where the tracker's state of the store at ``store_path`` lives."""
    return Path(store_path + SUFFIX)


def max_state_bytes(max_entries: int) -> int:
    """The largest state file read back for a tracker of ``max_entries`` migrations."""
    return max(MIN_STATE_BYTES, max_entries * BYTES_PER_MIGRATION)


def state_budget(max_entries: int) -> int:
    """The JSON values (:mod:`~otelkv.delivery.json_budget`'s structural tokens) a state file of
    ``max_entries`` migrations may hold; a file holding more is damaged, and is not parsed."""
    return MIN_TOKENS + max_entries * TOKENS_PER_MIGRATION


class PersistentTracker(MigrationTracker):
    """A :class:`MigrationTracker` that restores its state from ``path`` and saves it there."""

    def __init__(self, path: Path, *, interval: float = 1.0, **bounds: Any) -> None:
        super().__init__(**bounds)
        self.path = path
        self._interval = interval
        entries = int(bounds.get("max_entries", 10_000))
        self._max_file_bytes = max_state_bytes(entries)
        self._max_tokens = state_budget(entries)
        self._entries = entries
        self._saved_at = time.monotonic()
        #: Seconds the next save waits after the last: ``interval``, or longer for a large state.
        self._pause = interval
        self._too_large_said = False
        self._dirty = False
        #: A migration concluded since the last save: save within CONCLUDED_GAP, not interval...
        self._concluded = False
        #: ... or SAVE_SHARE times what saving the migrations alone took, when that is longer;
        #: and when they were last saved alone.
        self._quick_pause = CONCLUDED_GAP
        self._quick_at = 0.0
        self._lock = threading.RLock()  # the saver thread reads what the pipeline's threads change
        self._done = threading.Event()
        self._wake = threading.Event()  # stop, or a migration concluded
        self._saver: threading.Thread | None = None
        self.window: SavedWindow | None = None
        self.restored = self._load()

    def keep_window(self, window: SavedWindow) -> None:
        """Save ``window`` with the migrations from now on (before :meth:`start_saver`)."""
        self.window = window

    @property
    def dirty(self) -> bool:
        """The migrations or the duplicate window changed since the last save."""
        return self._dirty or (self.window is not None and self.window.dirty)

    def start_saver(self) -> None:
        """Save within ``interval`` of any change, from a thread of its own (until :meth:`stop_saver`)."""
        if self._saver is None:
            self._saver = threading.Thread(target=self._save_when_dirty, name="otelkv-migrations", daemon=True)
            self._saver.start()

    def stop_saver(self) -> None:
        """Stop the saver thread and save what changed since; safe twice."""
        self._done.set()
        self._wake.set()
        if self._saver is not None:
            self._saver.join(timeout=5)
        if self.dirty:
            self.save(changed_only=True)

    def _save_when_dirty(self) -> None:
        while True:
            self._wake.wait(self._until_due())
            self._wake.clear()
            if self._done.is_set():
                return
            whole = self.dirty and self._until_whole() <= 0
            if (whole or self._until_migrations() <= 0) and not self.save(changed_only=True, window=whole):
                self._done.wait(self._interval)  # the disk refused it: try again in a while, not at once

    def _until_whole(self) -> float:
        """Seconds until a save of what changed is due: ``interval`` (or a large state's pause)
        after the last one."""
        return max(0.0, self._pause - (time.monotonic() - self._saved_at))

    def _until_migrations(self) -> float:
        """Seconds until the migrations alone are saved because one concluded: CONCLUDED_GAP after
        the last save (or SAVE_SHARE times what saving them alone took, a tenth of a core)."""
        if not self._concluded:
            return float("inf")
        return max(0.0, self._quick_pause - (time.monotonic() - max(self._saved_at, self._quick_at)))

    def _until_due(self) -> float:
        """Seconds the saver may sleep (``interval`` while nothing changed)."""
        return min(self._until_whole(), self._until_migrations()) if self.dirty else self._interval

    def track(self, event: MigrationEvent, *, now: datetime | None = None, key: Hashable | None = None) -> Tracked:
        """As :meth:`MigrationTracker.track`, then save if it is time to."""
        with self._lock:
            tracked = super().track(event, now=now, key=key)
            self._changed(tracked.concluded)
        return tracked

    def track_object(
        self,
        obj: MigrationObject,
        *,
        now: datetime | None = None,
        key: Hashable | None = None,
        listing: bool = False,
        deleted: bool = False,
    ) -> Tracked | None:
        """As :meth:`MigrationTracker.track_object`, then save if it is time to."""
        with self._lock:
            tracked = super().track_object(obj, now=now, key=key, listing=listing, deleted=deleted)
            self._changed(tracked is not None and tracked.concluded)
        return tracked

    def save(self, *, changed_only: bool = False, window: bool = True) -> bool:
        """Write the state now (atomically); False, logged, when the disk refused it.
        ``changed_only``: only the migrations or the window that changed since the last save.
        ``window``: the duplicate window too (a save for a concluded migration leaves it for the
        next whole save: an older window on disk names no record the migrations have not seen).

        Only the snapshot is taken under the lock: serialising it, the write and its fsync never
        hold up the requests that track events meanwhile (they mark the state dirty again).

        The duplicate window's keys are copied first and written last: every key in them is a
        record tracked before the copy, so the migrations written before them include it."""
        started = time.monotonic()
        keys = None
        if window and self.window is not None and (self.window.dirty or not changed_only):
            keys = self.window.take()
        with self._lock:
            snapshot = self.export_state() if self._dirty or not changed_only else None  # fresh dicts and strings
            self._dirty = self._concluded = False
        if snapshot is not None:
            data = json.dumps(snapshot, separators=(",", ":")).encode()
            del snapshot
            try:
                write_private(self.path, data, fsync=True)
            except OSError as error:
                log.warning("saving the migrations to %s failed: %s", self.path, error)
                self._dirty = True
                return False  # nor the window: it may name records these migrations have not seen
            self._warn_if_too_large(len(data))
            self._quick_pause = max(CONCLUDED_GAP, SAVE_SHARE * (time.monotonic() - started))
        if not window:
            self._quick_at = time.monotonic()
            return True
        if keys is not None and self.window is not None and not self.window.write(keys):
            return False
        self._saved_at = time.monotonic()
        took = self._saved_at - started
        self._pause = max(self._interval, SAVE_SHARE * took) if took >= SLOW_SAVE else self._interval
        return True

    def _warn_if_too_large(self, size: int) -> None:
        if size > self._max_file_bytes and not self._too_large_said:
            self._too_large_said = True
            log.warning(
                "the saved migrations in %s take %d bytes, more than the %d read back at start",
                self.path,
                size,
                self._max_file_bytes,
            )

    def _changed(self, concluded: bool) -> None:
        self._dirty = True
        if concluded:
            self._concluded = True
            self._wake.set()
        # With the saver thread (otelkv serve) requests never write; without it (the library on
        # its own) the write happens here, at most once per interval.
        if self._saver is None and time.monotonic() - self._saved_at >= self._pause:
            self.save()

    def _load(self) -> int:
        """Restore the saved state; 0, in one log line, when there is none that can be used."""
        try:
            info = self.path.stat()
            if not stat.S_ISREG(info.st_mode):  # a FIFO would block the start, a device never end
                raise ValueError("not a regular file")
            size = info.st_size
            if size > self._max_file_bytes:
                raise ValueError(f"{size} bytes, more than the {self._max_file_bytes} read back")
            with self.path.open("rb") as file:
                data = file.read(size + 1)  # not the bound + 1: read() allocates what it is asked for
            if len(data) > size:  # it grew since stat: otelkv holds the store's lock, so not otelkv
                raise ValueError("the file changed while it was read")
            saved = loads_within(data, self._max_tokens, f"what enrich.max_migrations {self._entries} holds")
            del data
            restored = self.restore_state(saved)
        except FileNotFoundError:
            return 0
        except Exception as error:  # any damage (garbage, wrong types, too deep, too large) is ignored
            log.warning("ignoring the saved migrations in %s: %s: %s", self.path, type(error).__name__, error)
            return 0
        log.info("restored %d migrations from %s", restored, self.path)
        return restored
