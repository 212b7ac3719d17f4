"""The duplicate window: keys of the records the target accepted lately, so that a batch the
collector sends again (its answer was lost) is not forwarded twice."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["DeliveredKeys"]


class DeliveredKeys:
    """The last ``size`` record keys the target accepted (oldest forgotten first).

    An :class:`OrderedDict`, because forgetting the oldest of a plain dict (``del
    d[next(iter(d))]``) walks the deleted slots at its front: 20-100 µs a key once the window is
    full, more than enriching the record. ``popitem(last=False)`` is O(1).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Hashable) -> None:
        """Remember ``key``, forgetting the oldest beyond the bound (a key seen again keeps its place)."""
        self._keys[key] = None  # an existing key is not moved: eviction stays in first-seen order
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
