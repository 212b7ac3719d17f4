"""The duplicate window: keys of the records the target accepted lately, so that a batch the
collector sends again (its answer was lost) is not forwarded twice. With a store it is saved
beside it and restored at start (``otelkv.delivery.window_state``), so a retry after a restart is
recognised too."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Final

__all__ = ["BYTES_PER_KEY", "DeliveredKeys", "key_bytes"]

#: The memory the window's keys may take on average, a key (by :func:`key_bytes`): its bound in
#: bytes is its bound in keys (``enrich.dedup_window``) times this, 24.4 MiB for the default 50,000
#: (docs/reliability.md). Keys of Kubernetes events (a 36-character uid, a count, a cluster name
#: of up to 30 characters) take 350-480 bytes in a full window, so for them the count bound is the
#: one met first, as before; the longest keys (64-byte uid and count, 253-byte cluster) take 800:
#: the newest 32,000 of them are kept, where 50,000 took 36.8 MiB.
BYTES_PER_KEY: Final = 512
#: Measured with tracemalloc (CPython 3.11, 64-bit) on a full window that keeps forgetting keys:
#: an entry of the OrderedDict (its slot and node, 64 bytes, and its share of the table, whose
#: forgotten slots stay until it is rebuilt: 128 more), then the fixed part of each object, GC
#: header included.
ENTRY: Final = 192
TUPLE: Final = 56  # + 8 a part
STR: Final = 49  # + a byte a character (ASCII); + 4 a character otherwise, a bound
BYTES: Final = 33  # + a byte a byte
SCALAR: Final = 32  # int, float, bool, None


def key_bytes(key: Hashable) -> int:
    """About what keeping ``key`` in a full window costs in bytes: its objects and its entry
    (within 3% under and 15% over tracemalloc's figure for the keys ``otelkv.otlp.record_keys``
    makes, in a full window of 50,000; more for a string shared with other keys, a summary's
    name, and in a window that never filled)."""
    if type(key) is not tuple:
        return ENTRY + _object_bytes(key)
    total = ENTRY + TUPLE + 8 * len(key)
    for part in key:  # the keys record_keys makes, inline: this runs once a record
        kind = type(part)
        if kind is str and part.isascii():
            total += STR + len(part)
        elif kind is int:
            total += SCALAR
        else:
            total += _object_bytes(part)
    return total


def _object_bytes(part: object) -> int:
    if isinstance(part, str):
        return STR + (len(part) if part.isascii() else 4 * len(part) + 24)
    if isinstance(part, tuple):
        return TUPLE + 8 * len(part) + sum(_object_bytes(p) for p in part)
    if isinstance(part, bytes):
        return BYTES + len(part)
    return SCALAR


class DeliveredKeys:
    """The last ``size`` record keys the target accepted (oldest forgotten first), and no more
    than ``max_bytes`` of them by :func:`key_bytes` (``size`` x :data:`BYTES_PER_KEY` unless
    given; the newest key is always kept).

    An :class:`OrderedDict`, because forgetting the oldest of a plain dict (``del
    d[next(iter(d))]``) walks the deleted slots at its front: 20-100 µs a key once the window is
    full, more than enriching the record. ``popitem(last=False)`` is O(1).

    The pipeline reads and adds under its own lock; the saver thread copies the keys
    (:meth:`snapshot`) under this object's lock, which :meth:`add` takes too.
    """

    def __init__(self, size: int, *, max_bytes: int | None = None) -> None:
        self._size = size
        self._max_bytes = size * BYTES_PER_KEY if max_bytes is None else max_bytes
        self._bytes = 0
        #: Each key and what it costs (:func:`key_bytes`), given back when it is forgotten.
        self._keys: OrderedDict[Hashable, int] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def size(self) -> int:
        """How many keys the window holds at most."""
        return self._size

    @property
    def max_bytes(self) -> int:
        """How many bytes (:func:`key_bytes`) the window's keys take at most."""
        return self._max_bytes

    @property
    def nbytes(self) -> int:
        """What the keys held now take, by :func:`key_bytes`."""
        return self._bytes

    @property
    def generation(self) -> int:
        """A number that changes whenever a key is added (the saver saves only after a change)."""
        return self._generation

    def add(self, key: Hashable) -> None:
        """Remember ``key``, forgetting the oldest beyond the bound (a key seen again keeps its place)."""
        with self._lock:
            keys = self._keys
            held = len(keys)
            keys.setdefault(key, 0)  # an existing key is not moved: eviction stays in first-seen order
            if len(keys) > held:
                cost = keys[key] = key_bytes(key)
                self._bytes += cost
                while len(keys) > self._size or (self._bytes > self._max_bytes and len(keys) > 1):
                    self._bytes -= keys.popitem(last=False)[1]
            self._generation += 1

    def snapshot(self) -> list[Hashable]:
        """The keys, oldest first (a copy: the window goes on changing)."""
        with self._lock:
            return list(self._keys)

    def restore(self, keys: Iterable[Hashable]) -> int:
        """Add saved ``keys`` (oldest first) before serving; how many the window holds then."""
        for key in keys:
            self.add(key)
        return len(self._keys)
