"""The tracker's migrations kept on disk beside the store, so a restart mid-migration keeps
what earlier events revealed (the source node, the start time, a summary already made).

A JSON file next to ``delivery.store_path`` (``<store_path>.migrations.json``), written whole to a
temporary file, fsynced and renamed over the old one (``os.replace``): a crash leaves the old or
the new file, never half of one. In ``otelkv serve`` a saver thread writes it within ``interval``
seconds of a change (the end of a burst is saved without waiting for the next record: a SIGKILL
loses at most ``interval`` of changes), and at shutdown; used without it, at most once per
``interval`` as records come in.
Its size is bounded by the tracker's ``max_entries``. An unreadable, damaged or oversized file is
logged and ignored: otelkv starts with an empty tracker rather than not at all.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Hashable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from otelkv.kubevirt import MigrationEvent, MigrationObject, MigrationTracker, Tracked

log = logging.getLogger(__name__)

SUFFIX: Final = ".migrations.json"
#: A file larger than this is not read (10,000 migrations take about 5 MiB).
MAX_BYTES: Final = 64 * 1024 * 1024


def state_path(store_path: str) -> Path:
    """Where the tracker's state of the store at ``store_path`` lives."""
    return Path(store_path + SUFFIX)


class PersistentTracker(MigrationTracker):
    """A :class:`MigrationTracker` that restores its state from ``path`` and saves it there."""

    def __init__(self, path: Path, *, interval: float = 1.0, **bounds: Any) -> None:
        super().__init__(**bounds)
        self.path = path
        self._interval = interval
        self._saved_at = time.monotonic()
        self._dirty = False
        self._lock = threading.RLock()  # the saver thread reads what the pipeline's threads change
        self._done = threading.Event()
        self._saver: threading.Thread | None = None
        self.restored = self._load()

    def start_saver(self) -> None:
        """Save within ``interval`` of any change, from a thread of its own (until :meth:`stop_saver`)."""
        if self._saver is None:
            self._saver = threading.Thread(target=self._save_when_dirty, name="otelkv-migrations", daemon=True)
            self._saver.start()

    def stop_saver(self) -> None:
        """Stop the saver thread and save what changed since; safe twice."""
        self._done.set()
        if self._saver is not None:
            self._saver.join(timeout=5)
        if self._dirty:
            self.save()

    def _save_when_dirty(self) -> None:
        while not self._done.wait(self._interval):
            if self._dirty:
                self.save()

    def track(self, event: MigrationEvent, *, now: datetime | None = None, key: Hashable | None = None) -> Tracked:
        """As :meth:`MigrationTracker.track`, then save if it is time to."""
        with self._lock:
            tracked = super().track(event, now=now, key=key)
            self._changed()
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
            self._changed()
        return tracked

    def save(self) -> bool:
        """Write the state now (atomically); False, logged, when the disk refused it.

        Only the snapshot is taken under the lock: the write and its fsync never hold up the
        requests that track events meanwhile (they mark the state dirty again)."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        with self._lock:
            data = json.dumps(self.export_state(), separators=(",", ":")).encode()
            self._dirty = False
        try:
            with open(temporary, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            log.warning("saving the migrations to %s failed: %s", self.path, error)
            self._dirty = True
            return False
        self._saved_at = time.monotonic()
        return True

    def _changed(self) -> None:
        self._dirty = True
        # With the saver thread (otelkv serve) requests never write; without it (the library on
        # its own) the write happens here, at most once per interval.
        if self._saver is None and time.monotonic() - self._saved_at >= self._interval:
            self.save()

    def _load(self) -> int:
        try:
            size = self.path.stat().st_size
            if size > MAX_BYTES:
                raise ValueError(f"{size} bytes, more than {MAX_BYTES}")
            restored = self.restore_state(json.loads(self.path.read_bytes()))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, RecursionError) as error:  # json.JSONDecodeError is a ValueError
            log.warning("ignoring the saved migrations in %s: %s", self.path, error)
            return 0
        log.info("restored %d migrations from %s", restored, self.path)
        return restored
