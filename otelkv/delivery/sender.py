"""Queue mode's sender: takes batches off the on-disk queue, in order, and forwards them with retry.

One thread, oldest batch first, so a stream's order is kept. A batch leaves the queue when the
target accepted it (or refused it for good: then it becomes a dead letter), or when retrying it
passed ``retry.max_elapsed`` (a dead letter too), or after :data:`UNEXPECTED_ATTEMPTS` failures
in otelkv itself. On stop the batch being retried stays queued
for the next start.

Nothing acknowledged is dropped here: when ``dead_letter_max_entries`` dead letters are kept, a
batch that should become one stays at the head of the queue instead (a batch given up on is sent
again every ``retry.max_interval``; one the target refused for good is not sent again, only its
keeping is retried), so the queue fills and the collector feels the backpressure. The store
counts and logs each refusal (:attr:`otelkv.delivery.store.Store.dead_letters_full`).

The thread never dies: a store that cannot be read or written (a full disk) is retried with a
short backoff (:data:`STORE_PAUSE`), counted and logged by the store. A batch the target took but
whose removal cannot be written yet is not sent again: only its removal is retried, in this
process, until the disk has room. Only a restart before that sends it twice (at-least-once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Final, TypeVar

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.config import RetryConfig
from otelkv.delivery.store import DeadLettersFull, Entry, Store
from otelkv.errors import Retryable, StoreUnavailable
from otelkv.forward import Forwarder
from otelkv.forward.retry import Backoff
from otelkv.otlp.decode import decode_protobuf  # deep records, as they were received
from otelkv.telemetry.health import Health
from otelkv.telemetry.metrics import Telemetry
from otelkv.telemetry.streak import FailureStreak

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Waits between attempts at a store operation that failed: first, growth factor, cap (seconds).
STORE_PAUSE: Final = (0.05, 2.0, 1.0)
#: Attempts after which a batch that fails in otelkv itself (not a Retryable answer: a bug, or
#: input no forwarder can send) becomes a dead letter, kept for replay: retried until
#: ``retry.max_elapsed`` (an hour by default) it would hold every batch behind it that long.
UNEXPECTED_ATTEMPTS: Final = 5


class QueueSender:
    """The background thread of queue mode; :meth:`stop` is safe twice and before start."""

    def __init__(
        self,
        store: Store,
        forwarder: Forwarder,
        *,
        retry: RetryConfig,
        timeout: float,
        telemetry: Telemetry,
        health: Health,
    ) -> None:
        self._store = store
        self._forwarder = forwarder
        self._retry = retry
        self._timeout = timeout
        self._telemetry = telemetry
        self._health = health
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otelkv-queue", daemon=True)
        self._trouble = FailureStreak(log, f"the queue sender (store {store.path})", level=logging.ERROR)
        self._failures = FailureStreak(log, f"forwarding queued batches to {forwarder.target}")

    def start(self) -> None:
        """Start sending."""
        self._thread.start()

    def stop(self, grace: float) -> None:
        """Keep sending until the queue is empty or ``grace`` seconds passed, then stop."""
        self._draining.set()
        if self._thread.is_alive():
            self._thread.join(grace)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._timeout + 1)

    def _run(self) -> None:
        pause = _Pause()
        while not self._stop.is_set():
            try:
                if not self._step():
                    return
            except Exception as error:  # a bug, or a store error: logged, retried after a pause, never fatal
                self._trouble.failed(f"{type(error).__name__}: {error}")
                log.debug("the queue sender failed", exc_info=True)
                self._stop.wait(pause.next())
            else:
                pause.reset()
                self._trouble.recovered()

    def _step(self) -> bool:
        """Take one batch off the queue; False when draining and the queue is empty."""
        entry = self._store.oldest()
        if entry is None:
            if self._draining.is_set():
                return False
            if self._store.write_failing:  # nothing queued, yet the disk was full: find out when it is not
                self._settle(self._store.probe, until=self._draining)
            else:
                self._store.wait(0.5)
            return True
        request = _decode(entry)
        if request is None:
            log.error("queue entry %d is corrupt: moved to the dead letters", entry.id)
            self._settle(partial(self._store.skip_corrupt, entry))
            return True
        self._deliver(entry, request)
        return True

    def _settle(self, operation: Callable[[], _T], *, until: threading.Event | None = None) -> _T | None:
        """Run a store operation until it succeeds (None if stopped first); the store counts and logs
        each failure, so this only waits between attempts."""
        pause = _Pause()
        while not self._stop.is_set() and not (until is not None and until.is_set()):
            try:
                return operation()
            except StoreUnavailable:
                self._stop.wait(pause.next())
        return None

    def _settled(self, operation: Callable[[], object]) -> bool:
        """:meth:`_settle` for an operation with no result: True once it ran, False if stopped first."""

        def done() -> bool:
            operation()
            return True

        return self._settle(done) is True

    def _deliver(self, entry: Entry, request: ExportLogsServiceRequest) -> None:
        backoff = Backoff(self._retry, clock=time.monotonic)
        t = self._telemetry
        unexpected = 0
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                delivery = self._forwarder.send(request, timeout=self._timeout)
            except Exception as error:  # Retryable, or a bug: both are retried, never lost
                if not isinstance(error, Retryable):
                    log.exception("forwarding queue entry %d failed unexpectedly", entry.id)
                    unexpected += 1
                hint = error.retry_after if isinstance(error, Retryable) else None
                if hint is not None:  # a throttling hint is a pause, asked again at max_interval
                    hint = min(hint, self._retry.max_interval)
                self._failures.failed(str(error) or type(error).__name__, entry=entry.id)
                if backoff.attempts == 0:  # records, not attempts: a batch counts once
                    t.failed_records(entry.records, error)
                self._health.failed()
                wait = backoff.next(hint)
                if unexpected >= UNEXPECTED_ATTEMPTS:  # the same batch keeps failing in otelkv itself
                    wait = None
                if wait is None:
                    reason = f"gave up after {backoff.attempts} attempts: {error}"
                    kept = self._keep(entry, entry.payload, entry.records, reason)
                    if kept is not False:  # kept (or stopping: the batch stays queued)
                        if kept:
                            log.error("queue entry %d: %s", entry.id, reason)
                        return
                    wait = self._retry.max_interval  # dead letters full: held, and sent again
                self._stop.wait(wait)
                continue
            finally:
                t.latency.record(time.perf_counter() - start)
            self._failures.recovered()
            self._health.succeeded()
            if delivery.rejected >= entry.records:
                t.rejected_records(entry.records, delivery.error_type)
                log.warning("target refused queue entry %d: %s", entry.id, delivery.message)
                self._hold_until_kept(entry, entry.payload, entry.records, delivery.message)
                return
            # delivered: from here on only its removal is retried (or the keeping of what the
            # target refused whole, a 413'd part, with it), never the sending
            if delivery.rejected and delivery.refused is not None:
                refused = delivery.refused
                self._hold_until_kept(entry, refused.payload, refused.records, delivery.message)
            else:
                self._settle(partial(self._store.remove, entry.id))
            t.forwarded.add(entry.records - delivery.rejected)
            if delivery.rejected:
                t.rejected_records(delivery.rejected, delivery.error_type)
                log.warning("target refused %d records: %s", delivery.rejected, delivery.message)
            return

    def _keep(self, entry: Entry, payload: bytes, records: int, reason: str) -> bool | None:
        """Make ``payload`` a dead letter and take ``entry`` off the queue, in one transaction
        (retried while the store cannot be written). True once kept, False when the dead letters
        are full (the store counts and logs it; the entry stays queued), None if stopped first."""

        def attempt() -> bool:
            try:
                self._store.dead_letter(payload, records, reason, entry_id=entry.id)
            except DeadLettersFull:
                return False
            return True

        kept = self._settle(attempt)
        if kept:
            self._telemetry.dead_letters.add(records)
        return kept

    def _hold_until_kept(self, entry: Entry, payload: bytes, records: int, reason: str) -> None:
        """Keep a batch (or the part of it) the target refused for good: it is not sent again, and
        while the dead letters are full it stays queued, tried every ``retry.max_interval``, until
        there is room (a replay) or otelkv stops (then the next start sends it again)."""
        while self._keep(entry, payload, records, reason) is False:
            if self._stop.wait(self._retry.max_interval):
                return


class _Pause:
    """Exponential waits between attempts at a failing store operation (:data:`STORE_PAUSE`)."""

    def __init__(self) -> None:
        self._wait = STORE_PAUSE[0]

    def next(self) -> float:
        wait = self._wait
        self._wait = min(wait * STORE_PAUSE[1], STORE_PAUSE[2])
        return wait

    def reset(self) -> None:
        self._wait = STORE_PAUSE[0]


def _decode(entry: Entry) -> ExportLogsServiceRequest | None:
    if not entry.intact:
        return None
    try:
        return decode_protobuf(entry.payload)
    except Exception:
        return None
