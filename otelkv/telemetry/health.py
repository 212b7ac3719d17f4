"""Readiness (``/readyz`` and the gRPC health service): whether otelkv should take data now."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Health"]


class Health:
    """Readiness: false while draining, while the queue refuses data (full, or its disk full), or
    while the target has failed for ``unready_after`` s."""

    def __init__(self, unready_after: float, *, refusing: Callable[[], str | None] | None = None) -> None:
        self._unready_after = unready_after
        self._refusing = refusing
        self._lock = threading.Lock()
        self.draining = False
        self._failing_since: float | None = None
        self._last_failure = 0.0

    def succeeded(self) -> None:
        """The target took a request."""
        with self._lock:
            self._failing_since = None

    def failed(self) -> None:
        """The target could not take a request."""
        now = time.monotonic()
        with self._lock:
            self._failing_since = self._failing_since or now
            self._last_failure = now

    def ready(self) -> tuple[bool, str]:
        """Whether to take data, and why not.

        A failing target makes otelkv unready, until no request has failed for ``unready_after``
        seconds: then it is ready again so that traffic can find out whether the target is back.
        """
        if self.draining:
            return False, "draining"
        refusing = self._refusing() if self._refusing is not None else None
        if refusing:
            return False, refusing
        now = time.monotonic()
        with self._lock:
            since = self._failing_since
            if (
                since is not None
                and now - since >= self._unready_after
                and now - self._last_failure < self._unready_after
            ):
                return False, f"target failing for {now - since:.0f}s"
        return True, "ready"
