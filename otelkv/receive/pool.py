"""A receiver's work in its thread pool, charged to the in-flight cap until the work is done."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from otelkv.pipeline import Reservation

T = TypeVar("T")


def run_charged(pool: Executor, reservation: Reservation, work: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """``work(*args)`` in ``pool``, the request's reservation ``reservation`` given back when the work ends,
    not when the awaiting coroutine does (:meth:`Reservation.keep_until`). If the pool does not take
    the work (it is shut down), ``reservation`` stays the caller's to release.

    A plain function returning the future to await, not a coroutine: a coroutine's frame would hold
    the concurrent future and ``args`` while the work's exception passes through it, and the
    exception (in that future) and the frame (in its traceback) would keep each other — with the
    request's bytes — until the cyclic collector runs: hundreds of MiB of refused requests under
    load (``bench/bench.py --memory-only``: 768 MiB peak against 100).
    """
    future = pool.submit(work, *args)
    reservation.keep_until(future)  # before any await: no cancellation between
    return asyncio.wrap_future(future)
