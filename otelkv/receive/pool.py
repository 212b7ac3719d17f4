"""A receiver's work in its thread pool, charged to the in-flight cap until the work is done."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import ExitStack
from typing import Any, TypeVar

T = TypeVar("T")


async def run_charged(pool: Executor, charge: ExitStack, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in ``pool``; ``charge`` (what holds the request's in-flight reservation) is
    closed when the work ends, not when the awaiting coroutine does.

    A gRPC call cancelled by its deadline or its client (or an HTTP handler cancelled at shutdown)
    ends the coroutine while the worker still decodes, enriches and forwards the request: released
    then, that memory would sit outside the cap — behind a slow target, a whole pool of requests.
    ``charge`` keeps its reservation if the work cannot be submitted (the pool is shut down).
    """
    future = pool.submit(work, *args)
    owned = charge.pop_all()  # the worker's now: no await since submit, so no cancellation between
    future.add_done_callback(lambda _: owned.close())  # in the worker's thread (at once if done)
    return await asyncio.wrap_future(future)
