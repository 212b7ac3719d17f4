"""Logging a run of failures without flooding: the first one, then a count now and then, then the end.

The OpenTelemetry Collector's rule is "never log per item"; an operator still has to see at the
default level that something is failing, what, and when it stopped. A :class:`FailureStreak`
logs the first failure of a streak at ``level``, then at most one line every ``every`` seconds
with how many failed since, and one line at info when the thing works again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

#: Seconds between two log lines of one ongoing streak.
DEFAULT_EVERY = 30.0


class FailureStreak:
    """Thread-safe; ``what`` names the thing that fails (``forwarding to http://…``)."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        level: int = logging.WARNING,
        every: float = DEFAULT_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._what = what
        self._level = level
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0  # in this streak
        self._unlogged = 0  # since the last line
        self._started = 0.0
        self._last_line = 0.0

    @property
    def failing(self) -> bool:
        """A streak is going on."""
        with self._lock:
            return self._failures > 0

    def failed(self, reason: str, **extra: Any) -> None:
        """One more failure, with why (never a credential: callers pass what is safe to log)."""
        now = self._clock()
        with self._lock:
            self._failures += 1
            self._unlogged += 1
            first = self._failures == 1
            if first:
                self._started = now
            elif now - self._last_line < self._every:
                return
            count, window = self._unlogged, now - self._last_line
            self._unlogged, self._last_line = 0, now
            failures, since = self._failures, now - self._started
        if first:
            self._log.log(self._level, "%s failed: %s", self._what, reason, extra=extra)
        else:
            self._log.log(
                self._level,
                "%s still failing: %d failures in the last %.0fs, %d over %.0fs: %s",
                self._what,
                count,
                window,
                failures,
                since,
                reason,
                extra={"failures": failures, **extra},
            )

    def recovered(self) -> None:
        """It worked: end the streak, saying so if there was one."""
        now = self._clock()
        with self._lock:
            failures, since = self._failures, now - self._started
            self._failures = self._unlogged = 0
        if failures:
            self._log.info(
                "%s works again after %d failures over %.0fs", self._what, failures, since, extra={"failures": failures}
            )
