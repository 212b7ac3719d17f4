"""The duplicate window: keys of the records the target accepted lately, so that a batch the
collector sends again (its answer was lost) is not forwarded twice. With a store it is saved
beside it and restored at start (``otelkv.delivery.window_state``), so a retry after a restart is
recognised too."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable

__all__ = ["DeliveredKeys"]


class DeliveredKeys:
    """The last ``size`` record keys the target accepted (oldest forgotten first).

    An :class:`OrderedDict`, because forgetting the oldest of a plain dict (``del
    d[next(iter(d))]``) walks the deleted slots at its front: 20-100 µs a key once the window is
    full, more than enriching the record. ``popitem(last=False)`` is O(1).

    The pipeline reads and adds under its own lock; the saver thread copies the keys
    (:meth:`snapshot`) under this object's lock, which :meth:`add` takes too.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[Hashable, None] = OrderedDict()
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
    def generation(self) -> int:
        """A number that changes whenever a key is added (the saver saves only after a change)."""
        return self._generation

    def add(self, key: Hashable) -> None:
        """Remember ``key``, forgetting the oldest beyond the bound (a key seen again keeps its place)."""
        with self._lock:
            self._keys[key] = None  # an existing key is not moved: eviction stays in first-seen order
            if len(self._keys) > self._size:
                self._keys.popitem(last=False)
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
