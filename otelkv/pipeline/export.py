"""receive → enrich → forward, counted: the one path every request takes, whatever its transport."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.config import RetryConfig
from otelkv.errors import QueueFull, Retryable, StoreUnavailable
from otelkv.forward import Delivery, Encoded, Forwarder, Request, count_records
from otelkv.forward.retry import Backoff
from otelkv.kubevirt import MigrationTracker
from otelkv.otlp import native
from otelkv.otlp.enrich import EnrichOptions, EnrichResult, enrich
from otelkv.otlp.wire import enrich_wire
from otelkv.pipeline.dedup import DeliveredKeys
from otelkv.pipeline.inflight import Charge, InflightBytes
from otelkv.telemetry.health import Health
from otelkv.telemetry.metrics import Telemetry
from otelkv.telemetry.streak import FailureStreak

if TYPE_CHECKING:  # the store (sqlite3) is imported only by a configuration that has one
    from otelkv.delivery.store import Store

log = logging.getLogger(__name__)

#: What enriching makes for each record beyond what decoding charged, on either core: its view, its
#: event and key (and on the reference path its message copy). Measured with VmHWM: ~470 bytes on
#: the reference path; a request of 100,000 one-record scopes took the compiled core's path to a
#: 220 MiB peak while it was charged 54 MB (docs/reliability.md).
ENRICH_RECORD_COST: Final = 512
#: The least time worth giving another attempt in sync mode.
_MIN_ATTEMPT = 0.5


@dataclass(frozen=True, slots=True)
class Settings:
    """What the pipeline needs besides its collaborators."""

    options: EnrichOptions
    timeout: float
    max_message_bytes: int
    #: queue mode: acknowledge once the batch is in the store (the sender forwards it later).
    queue: bool = False
    #: sync mode: retry within ``timeout`` (all attempts together) with this backoff; None: once.
    retry: RetryConfig | None = None


class Pipeline:
    """Enriches and forwards one request at a time per caller; shared state behind one lock."""

    def __init__(
        self,
        forwarder: Forwarder,
        tracker: MigrationTracker,
        delivered: DeliveredKeys,
        *,
        telemetry: Telemetry,
        health: Health,
        settings: Settings,
        store: Store | None = None,
        inflight: InflightBytes | None = None,
    ) -> None:
        if settings.queue and store is None:
            raise ValueError("queue mode needs a store")
        self.store = store
        self.inflight = inflight or InflightBytes(2**62)
        self.forwarder = forwarder
        self._tracker = tracker
        self._delivered = delivered
        self._telemetry = telemetry
        self.health = health
        self.settings = settings
        self._lock = threading.Lock()
        self._failures = FailureStreak(log, f"forwarding to {forwarder.target}")
        #: queue mode: requests refused because the store would not take them
        #: (``otelkv_requests_refused_total{error_type=...}``)
        self.refused = {"queue_full": 0, "store_unavailable": 0}

    def invalid(self, error: BaseException | None = None) -> None:
        """Count a request refused as bad: ``too_large`` for a :class:`BadRequest` over a size limit,
        else ``malformed`` (malformed, wrong type)."""
        self._telemetry.invalid_request("too_large" if getattr(error, "too_large", False) else "malformed")

    def export(
        self, request: ExportLogsServiceRequest, *, payload: bytes | None = None, charge: Charge | None = None
    ) -> Delivery:
        """Enrich ``request``, then send it (sync mode) or enqueue it (queue mode), then settle:
        three steps in a row, as the Collector's exporterhelper layers them. Raises
        :class:`Retryable` when the target or the store cannot take it now.

        ``payload``: the bytes ``request`` was decoded from, for the native core (which reads and
        writes the wire format) when it is built and takes this request's shape. ``charge``: where
        the memory enriching makes is charged before it runs (the receiver's reservation).
        """
        result = self._enrich(request, payload, charge)
        if result.forwarded == 0:
            return Delivery()
        if self.settings.queue:
            return self._enqueue(result)
        return self._settle(result, self._send(result))

    def _enrich(self, request: ExportLogsServiceRequest, payload: bytes | None, charge: Charge | None) -> EnrichResult:
        """Enrich under the lock that guards the tracker and the duplicate window; counted. The
        request is charged :data:`ENRICH_RECORD_COST` a record first, whichever core takes it."""
        core = native.core() if payload is not None else None
        if charge is not None:  # either core makes Python objects for each record: views, events, copies
            charge.add(ENRICH_RECORD_COST * count_records(request))
        with self._lock:
            now = datetime.now(UTC)
            delivered = self._delivered.__contains__
            options = self.settings.options
            result = None
            if core is not None and payload is not None:
                result = enrich_wire(payload, self._tracker, options, delivered, core=core, now=now)
            if result is None:
                result = enrich(request, self._tracker, options, delivered, now=now)
        t = self._telemetry
        t.requests_enriched.add(1, {"core": "python" if result.wire is None else "native"})
        t.received.add(result.received)
        t.enriched.add(result.enriched)
        t.duplicates.add(result.duplicates)
        t.dropped.add(result.dropped_others)
        if result.summaries:
            t.summaries.add(result.summaries, {"outcome": "added"})
        return result

    def _send(self, result: EnrichResult) -> Delivery:
        """Sync mode: forward with retry inside the budget; a failure is counted and raised."""
        t = self._telemetry
        start = time.perf_counter()
        try:
            return self._send_within_budget(_outgoing(result))
        except Exception as error:
            if not isinstance(error, Retryable):
                log.exception("forwarding to %s failed unexpectedly", self.forwarder.target)
            self._failures.failed(str(error) or type(error).__name__)
            t.failed_records(result.forwarded, error)
            self.health.failed()
            raise
        finally:
            t.latency.record(time.perf_counter() - start)

    def _settle(self, result: EnrichResult, delivery: Delivery) -> Delivery:
        """The target answered: mark the keys delivered, count what it took and what it refused,
        and keep a request it refused whole as a dead letter (when there is a store)."""
        t = self._telemetry
        self._failures.recovered()
        self.health.succeeded()
        self._remember(result)
        t.forwarded.add(result.forwarded - delivery.rejected)
        if delivery.rejected or delivery.message:
            t.rejected_records(delivery.rejected, delivery.error_type)
            log.warning("target %s refused %d records: %s", self.forwarder.target, delivery.rejected, delivery.message)
        if self.store is None or not delivery.rejected:
            return _as_answered(delivery, result)
        kept = None
        if delivery.rejected >= result.forwarded:  # refused whole: keep it
            kept = (result.payload, result.forwarded)
        elif delivery.refused is not None:  # a part refused whole (a 413 after a split): keep that part
            kept = (delivery.refused.payload, delivery.refused.records)
        if kept is not None:
            try:
                self.store.dead_letter(kept[0], kept[1], delivery.message)
            except StoreUnavailable:  # counted and logged by the store (dead letters full too); the answer stands
                pass
            else:
                t.dead_letters.add(kept[1])
        return _as_answered(delivery, result)

    def _send_within_budget(self, request: Request) -> Delivery:
        """Sync mode: attempts with backoff, all inside ``timeout`` — the collector waits 5 s for an
        answer. A wait (or the target's Retry-After) that does not fit ends it: UNAVAILABLE with
        that hint, and the collector's own retry takes over."""
        deadline = time.monotonic() + self.settings.timeout
        backoff = Backoff(self.settings.retry, clock=time.monotonic) if self.settings.retry else None
        while True:
            try:
                return self.forwarder.send(request, timeout=max(0.05, deadline - time.monotonic()))
            except Retryable as error:
                wait = backoff.next(error.retry_after) if backoff else None
                if wait is None or time.monotonic() + wait + _MIN_ATTEMPT > deadline:
                    raise
                time.sleep(wait)

    def _enqueue(self, result: EnrichResult) -> Delivery:
        """Queue mode: persist the enriched batch; acknowledged once it is in the store."""
        assert self.store is not None
        try:
            self.store.put(result.payload, result.forwarded)
        except QueueFull:  # backpressure: the collector holds the data and retries
            self.refused["queue_full"] += 1
            raise
        except StoreUnavailable:  # disk full, I/O error: the same, until it can write again
            self.refused["store_unavailable"] += 1
            raise
        self._remember(result)
        return Delivery()

    def _remember(self, result: EnrichResult) -> None:
        """Mark the request's record keys delivered — only once the target or the store took them."""
        with self._lock:
            for key in result.keys:
                self._delivered.add(key)


def _outgoing(result: EnrichResult) -> Request:
    """The enriched request as the forwarder gets it: as written (bytes from the native core)."""
    return Encoded(result.wire, result.forwarded) if result.wire is not None else result.request


def _as_answered(delivery: Delivery, result: EnrichResult) -> Delivery:
    """What the client is told was rejected: never more than the records it sent and otelkv
    forwarded (the target's count may include the summary records otelkv added)."""
    sent = result.forwarded - result.summaries
    return delivery if delivery.rejected <= sent else dataclasses.replace(delivery, rejected=sent)
