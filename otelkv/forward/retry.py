"""Exponential backoff with jitter that honours the target's hint and gives up after a while."""

from __future__ import annotations

import random
from collections.abc import Callable

from otelkv.config import RetryConfig


class Backoff:
    """The waits between attempts of one batch.

    ``next(hint)`` returns how long to wait before the next attempt — the jittered exponential
    interval, or the target's ``Retry-After`` hint when that is longer — or None once
    ``max_elapsed`` has passed since the first attempt: then the batch is given up
    (dead-lettered). A wait that would pass ``max_elapsed`` is cut to end there, so that the last
    attempt is made then: a throttling hint is a pause, never a reason to give up at once (a
    ``Retry-After: 99999`` dead-lettered every batch after one attempt, issue 18 item 3). The
    queue sender also caps the hint at ``max_interval`` (it asks again, as after a 503); sync
    mode compares the hint with its answer budget and passes it on to the collector.
    """

    def __init__(
        self,
        config: RetryConfig,
        *,
        clock: Callable[[], float],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._config = config
        self._clock = clock
        self._rand = rand
        self._started = clock()
        self._interval = config.initial_interval
        self.attempts = 0

    def next(self, hint: float | None = None) -> float | None:
        """The wait before the next attempt, or None to give up."""
        c = self._config
        self.attempts += 1
        jittered = self._interval * (1 - c.jitter + 2 * c.jitter * self._rand())
        self._interval = min(self._interval * c.multiplier, c.max_interval)
        wait = max(jittered, hint or 0.0)
        left = c.max_elapsed - (self._clock() - self._started)
        if left <= 0:
            return None
        return min(wait, left)
