"""Queue mode's sender: takes batches off the on-disk queue, in order, and forwards them with retry.

One thread, oldest batch first, so a stream's order is kept. A batch leaves the queue when the
target accepted it (or refused it for good: then it becomes a dead letter), or when retrying it
passed ``retry.max_elapsed`` (a dead letter too). On stop the batch being retried stays queued
for the next start.
"""

from __future__ import annotations

import logging
import threading
import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.config import RetryConfig
from otelkv.errors import Retryable
from otelkv.forward import Forwarder
from otelkv.forward.retry import Backoff
from otelkv.pipeline import Health
from otelkv.store import Entry, Store
from otelkv.telemetry import Telemetry

log = logging.getLogger(__name__)


class QueueSender:
    """The background thread of queue mode; :meth:`stop` is safe twice and before start."""

    def __init__(self, store: Store, forwarder: Forwarder, *, retry: RetryConfig, timeout: float,
                 telemetry: Telemetry, health: Health) -> None:  # fmt: skip
        self._store = store
        self._forwarder = forwarder
        self._retry = retry
        self._timeout = timeout
        self._telemetry = telemetry
        self._health = health
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otelkv-queue", daemon=True)

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
        while not self._stop.is_set():
            try:
                entry = self._store.oldest()
            except Exception:
                log.exception("reading the queue failed")
                self._stop.wait(1)
                continue
            if entry is None:
                if self._draining.is_set():
                    return
                self._store.wait(0.5)
                continue
            request = _decode(entry)
            if request is None:
                log.error("queue entry %d is corrupt: moved to the dead letters", entry.id)
                self._store.skip_corrupt(entry)
                continue
            self._deliver(entry, request)

    def _deliver(self, entry: Entry, request: ExportLogsServiceRequest) -> None:
        backoff = Backoff(self._retry, clock=time.monotonic)
        t = self._telemetry
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                delivery = self._forwarder.send(request, timeout=self._timeout)
            except Exception as error:  # Retryable, or a bug: both are retried, never lost
                if not isinstance(error, Retryable):
                    log.exception("forwarding queue entry %d failed unexpectedly", entry.id)
                hint = error.retry_after if isinstance(error, Retryable) else None
                t.failed.add(entry.records)
                self._health.failed()
                wait = backoff.next(hint)
                if wait is None:
                    reason = f"gave up after {backoff.attempts} attempts: {error}"
                    log.error("queue entry %d: %s", entry.id, reason)
                    self._store.dead_letter(entry.payload, entry.records, reason, entry_id=entry.id)
                    t.dead_letters.add(entry.records)
                    return
                self._stop.wait(wait)
                continue
            finally:
                t.latency.record(time.perf_counter() - start)
            self._health.succeeded()
            if delivery.rejected >= entry.records:
                self._store.dead_letter(entry.payload, entry.records, delivery.message, entry_id=entry.id)
                t.rejected.add(entry.records)
                t.dead_letters.add(entry.records)
                log.warning("target refused queue entry %d: %s", entry.id, delivery.message)
            else:
                self._store.remove(entry.id)
                t.forwarded.add(entry.records - delivery.rejected)
                if delivery.rejected:
                    t.rejected.add(delivery.rejected)
                    log.warning("target refused %d records: %s", delivery.rejected, delivery.message)
            return


def _decode(entry: Entry) -> ExportLogsServiceRequest | None:
    if not entry.intact:
        return None
    try:
        return ExportLogsServiceRequest.FromString(entry.payload)
    except Exception:
        return None
