"""The files otelkv keeps beside its store: private to the user otelkv runs as, and the store's lock.

They hold queued log data and what the tracker learnt from it, so every one is created ``0600``
(owner read and write; SQLite gives its ``-wal`` and ``-shm`` files the mode of the database
file) and one found looser (made by an older otelkv, which created them ``0644``) is tightened.
otelkv never creates the store's directory: the Deployment's volume or the operator does.

The lock: one otelkv process per store, as the Collector's ``file_storage`` extension locks its
files. Two processes on one store would each send the same queued batches (77% duplicates
measured, issue 18 item 5) and count its queue wrong. ``<store>.lock`` beside the store holds an
exclusive ``flock`` for the life of the process that opened the store, and that process's pid;
the kernel releases it when the process ends, however it ends (SIGKILL too), so a stale lock
file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterable
from pathlib import Path
from stat import S_ISREG
from typing import Final

from otelkv.errors import ConfigError, UserError

__all__ = ["PRIVATE", "StoreLock", "StoreLocked", "create_private", "lock_path", "write_private"]

#: The mode of every file otelkv keeps beside its store.
PRIVATE: Final = 0o600


def create_private(path: str | Path) -> None:
    """Make ``path`` an empty ``0600`` file if it does not exist; tighten it to ``0600`` if it is
    looser and otelkv owns it (an older otelkv's ``0644``). Errors are left to the caller's open."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE))
    tighten(path)


def tighten(path: str | Path | int) -> None:
    """``chmod 0600`` a file otelkv owns whose mode lets others in; anything else (a symlink's
    target included: a path is not followed) is left alone. ``path`` may be an open descriptor."""
    with contextlib.suppress(OSError):
        if isinstance(path, int):
            stat = os.fstat(path)
        else:
            stat = os.lstat(path)
            if not S_ISREG(stat.st_mode):
                return
        if stat.st_mode & 0o077 and stat.st_uid == os.getuid():
            if isinstance(path, int):
                os.fchmod(path, PRIVATE)
            else:
                os.chmod(path, PRIVATE)


def write_private(path: Path, data: bytes | Iterable[bytes], *, fsync: bool) -> None:
    """Replace ``path`` with ``data`` (bytes, or pieces written in turn) atomically: a ``0600``
    temporary file, renamed over it, so a crash leaves the old or the new file, never half of one.
    Raises OSError.

    The temporary file ``<path>.tmp`` is always a new one: whatever is there (an older otelkv's
    leftover, or something planted) is unlinked first (a symlink itself, never its target), then
    the file is created with ``O_EXCL | O_NOFOLLOW``, so otelkv never writes through a symlink nor
    opens a FIFO or a device (which would block the saver, then the shutdown). Something made there
    in between is an OSError: this save fails, the next one tries again."""
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(temporary, flags, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)  # exactly 0600, whatever the umask
        for piece in (data,) if isinstance(data, bytes | bytearray | memoryview) else data:
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    os.close(fd)
    os.replace(temporary, path)


def lock_path(store: str) -> Path:
    """The lock file of the store at ``store``: beside the file the path leads to, so that two
    paths to one store (a symlink, a symlinked directory) take the same lock."""
    return Path(f"{os.path.realpath(store)}.lock")


class StoreLocked(UserError):
    """Another process holds the store's lock; the message names the store and the holder's pid."""


class StoreLock:
    """The exclusive lock on a store, taken at construction (raises :class:`StoreLocked` at once,
    never waits) and held until :meth:`release` or the process ends; release is safe twice."""

    def __init__(self, store: str) -> None:
        self.path = lock_path(store)
        self._created = not self.path.exists()
        # Never through a symlink (otelkv would truncate and chmod its target), never blocking on a
        # FIFO; and a regular file only.
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            self._fd: int | None = os.open(self.path, flags, PRIVATE)
        except OSError as error:  # a read-only volume, a directory otelkv may not write, a symlink
            why = "a symlink" if error.errno == errno.ELOOP else error.strerror
            raise ConfigError(f"delivery.store_path: cannot open {store!r}: its lock file {self.path}: {why}") from None
        if not S_ISREG(os.fstat(self._fd).st_mode):
            os.close(self._fd)
            self._fd = None
            raise ConfigError(
                f"delivery.store_path: cannot open {store!r}: its lock file {self.path}: not a regular file"
            )
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(self._fd)
            os.close(self._fd)
            self._fd = None
            raise StoreLocked(
                f"delivery.store_path: the store {store} is in use by another otelkv process "
                f"(pid {holder}, lock {self.path}): one process per store"
            ) from None
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        tighten(self._fd)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    @classmethod
    def check(cls, store: str) -> None:
        """Raise :class:`StoreLocked` if another process holds the lock now (taken and given back:
        a check before a process binds its ports, so that the store is what the error names)."""
        if Path(store).parent.is_dir():
            cls(store).release(remove=True)

    @property
    def held(self) -> bool:
        """The lock is held by this object."""
        return self._fd is not None

    def release(self, *, remove: bool = False) -> None:
        """Give the lock back. The file stays (removing it would race with the next holder), except
        with ``remove`` when this object made it: a store that could not be opened, a check."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                if remove and self._created:  # still held: nobody else has it open
                    os.unlink(self.path)
            os.close(fd)  # closing the descriptor releases the flock


def _holder(fd: int) -> str:
    """The pid written in the lock file, or ``unknown``."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
