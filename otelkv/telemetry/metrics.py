"""otelkv's own metrics: Prometheus text at /metrics, OTLP/gRPC push when asked, or nowhere.

The OpenTelemetry SDK (:mod:`otelkv.telemetry.sdk`) is imported only when the metrics go
somewhere; without a reader every instrument is one that records nothing, and this module
imports nothing beyond the standard library, so the pipeline and the queue that count through
:class:`Telemetry` do not load the SDK either (docs/performance.md, "A lighter sidecar").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from otelkv import __version__
from otelkv.otlp import native

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry


class QueueGauges(Protocol):
    """What the queue's gauges read (:class:`otelkv.delivery.store.Store` has it)."""

    corrupt: int
    errors: int
    damaged: int
    dead_letters_full: int

    def stats(self) -> tuple[int, int, float | None]:
        """Records and bytes queued, and the oldest entry's time (or None)."""
        ...


#: Buckets of ``otelkv_forward_duration_seconds``: seconds, 5 ms to 10 s (the SDK's default
#: buckets are made for milliseconds: every sample fell in the 5 s bucket).
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The attribute that tells failures apart (OpenTelemetry's semantic convention ``error.type``):
#: an HTTP status (``401``, ``503``), a gRPC code name, ``timeout``, ``connection``… — bounded.
ERROR_TYPE: Final = "error.type"


def error_type(error: BaseException) -> str:
    """The ``error.type`` of a forward failure: the target's status or code, or the error's class."""
    return getattr(error, "error_type", None) or type(error).__name__


class Unrecorded:
    """An instrument without a reader: its measurements go nowhere, at no cost."""

    __slots__ = ()

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        """Count nothing."""

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        """Record nothing."""


class _NoMeter:
    """A meter for a process whose metrics go nowhere (no /metrics, no OTLP endpoint)."""

    def create_counter(self, *args: Any, **kwargs: Any) -> Unrecorded:
        return Unrecorded()

    create_histogram = create_up_down_counter = create_counter

    def create_observable_gauge(self, *args: Any, **kwargs: Any) -> None:
        return None

    create_observable_counter = create_observable_gauge


class Telemetry:
    """The counters and the latency histogram of one otelkv process (instance-local registry).

    ``prometheus``: a reader for /metrics (:meth:`prometheus_text`); ``otlp_endpoint``: a push
    reader to that OTLP/gRPC ``host:port``; with neither, the SDK is not loaded and the
    instruments record nothing (:attr:`recording` is False).

    Every counter without labels exists from the start at 0, and a labelled one with each value it
    can take when those are known (``requests_invalid``, ``summaries``), so that ``rate()`` and
    alerts see a series before the first failure; ``records_failed`` and ``records_rejected`` are
    labelled by the target's answer and start with it (never with an empty label).
    """

    def __init__(self, *, otlp_endpoint: str | None = None, prometheus: bool = True) -> None:
        self._registry: CollectorRegistry | None = None
        self._provider: MeterProvider | None = None
        #: Whether the measurements go anywhere (the SDK is loaded).
        self.recording = bool(prometheus or otlp_endpoint)
        meter: Meter | _NoMeter = _NoMeter()
        if self.recording:
            from otelkv.telemetry import sdk  # noqa: PLC0415 - only where the metrics go somewhere

            self._registry = sdk.prometheus_registry() if prometheus else None
            self._provider = sdk.meter_provider(
                registry=self._registry, otlp_endpoint=otlp_endpoint, duration_buckets=DURATION_BUCKETS
            )
            meter = self._provider.get_meter("otelkv", __version__)
        records = "{record}"
        self.received = meter.create_counter("otelkv.records.received", records, "Log records received")
        self.enriched = meter.create_counter("otelkv.records.enriched", records, "KubeVirt event records enriched")
        self.forwarded = meter.create_counter("otelkv.records.forwarded", records, "Records the target accepted")
        self.rejected = meter.create_counter(
            "otelkv.records.rejected", records, "Records the target refused for good, by error.type"
        )
        self.failed = meter.create_counter(
            "otelkv.records.failed",
            records,
            "Records the target could not take now, by error.type (sync: each request answered retryable; "
            "queue: each batch once, however many attempts)",
        )
        self.duplicates = meter.create_counter("otelkv.records.duplicates", records, "Exact duplicates dropped")
        self.dropped = meter.create_counter("otelkv.records.dropped", records, "Non-KubeVirt records dropped")
        self.bad_requests = meter.create_counter("otelkv.requests.invalid", "{request}", "Requests refused as bad")
        self.latency = meter.create_histogram("otelkv.forward.duration", "s", "Time to forward one request")
        self.summaries = meter.create_counter(
            "otelkv.summaries",
            "{record}",
            "kubevirt.migration.summary records, by outcome (added: made by enrichment, one per migration that "
            "ended; they are forwarded with the records and counted in records_forwarded too)",
        )
        self.dead_letters = meter.create_counter(
            "otelkv.records.dead_lettered", records, "Records kept as dead letters (given up on or refused)"
        )
        # receive side: refusals for a missing or wrong bearer token
        self.unauthenticated = meter.create_counter(
            "otelkv.requests.unauthenticated", "{request}", "Requests refused for a missing or wrong bearer token"
        )
        self._meter: Any = meter
        # which enrichment core runs (native | python), as Prometheus' *_info convention
        build = meter.create_up_down_counter("otelkv.build.info", "", "otelkv's version and enrichment core (always 1)")
        build.add(1, {"version": __version__, "core": native.choice().name})
        # which path each request took: with the compiled core, "python" counts the requests it
        # left to the reference path (map bodies, records enriched before, odd shapes)
        self.requests_enriched = meter.create_counter(
            "otelkv.requests.enriched", "{request}", "Requests enriched, by core: native or python (the reference path)"
        )
        for core in ("native", "python") if native.choice().module is not None else ("python",):
            self.requests_enriched.add(0, {"core": core})
        for counter in (
            self.received,
            self.enriched,
            self.forwarded,
            self.duplicates,
            self.dropped,
            self.dead_letters,
            self.unauthenticated,
        ):
            counter.add(0)  # a series from the start
        # A counter with an error.type label starts with a series per known value, never one without
        # the label: Prometheus would show it as error_type="" beside the others.
        for kind in ("malformed", "too_large", "unsupported"):
            self.bad_requests.add(0, {ERROR_TYPE: kind})
        self.summaries.add(0, {"outcome": "added"})

    def failed_records(self, count: int, error: BaseException) -> None:
        """``count`` records the target could not take now, by the failure's ``error.type``."""
        self.failed.add(count, {ERROR_TYPE: error_type(error)})

    def rejected_records(self, count: int, kind: str) -> None:
        """``count`` records the target refused for good; ``kind`` its status or code."""
        self.rejected.add(count, {ERROR_TYPE: kind or "rejected"})

    def invalid_request(self, kind: str = "malformed") -> None:
        """A request refused as bad; ``kind``: ``malformed``, ``too_large`` or ``unsupported`` (a gRPC
        request over the size limit is ``too_large``: the receivers call this however they find it)."""
        self.bad_requests.add(1, {ERROR_TYPE: kind})

    def observe_queue(self, store: QueueGauges) -> None:
        """Export the queue's depth, bytes and oldest age, and the corrupt entries skipped."""
        if not self.recording:
            return
        from opentelemetry.metrics import Observation  # noqa: PLC0415 - the SDK's API, loaded with it

        def depth(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.stats()[0])]

        def size(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.stats()[1])]

        def age(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.stats()[2] or 0.0)]

        def corrupt(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.corrupt)]

        def errors(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.errors)]

        def damaged(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.damaged)]

        m = self._meter
        m.create_observable_gauge("otelkv.queue.records", [depth], "{record}", "Records in the on-disk queue")
        m.create_observable_gauge("otelkv.queue.bytes", [size], "By", "Bytes in the on-disk queue")
        m.create_observable_gauge("otelkv.queue.oldest_age", [age], "s", "Age of the oldest queued batch")
        m.create_observable_counter("otelkv.queue.corrupt", [corrupt], "{entry}", "Corrupt queue entries skipped")
        m.create_observable_counter(
            "otelkv.queue.store_errors", [errors], "{error}", "Failed reads and writes of the store (disk full, I/O)"
        )

        def dead_letters_full(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.dead_letters_full)]

        m.create_observable_counter(
            "otelkv.queue.dead_letters_full",
            [dead_letters_full],
            "{refusal}",
            "Dead letters refused because delivery.dead_letter_max_entries were kept: the batch stayed queued",
        )
        m.create_observable_counter(
            "otelkv.queue.damaged",
            [damaged],
            "{store}",
            "Damaged stores set aside and replaced, and stores found empty where records were expected",
        )

    def observe_refusals(
        self, refused: Callable[[], Mapping[str, int]], closed: Callable[[], Mapping[str, int]]
    ) -> None:
        """Export the requests refused for now (``refused``: running counts by error type: ``busy``
        for lack of in-flight room; in queue mode ``queue_full`` and ``store_unavailable``), and the
        connections otelkv closed itself (``closed``: running counts by reason: ``limit``,
        ``header_timeout``, ``tls_handshake``, ``handshake_limit``): all answered as retryable, so
        the collector shows only UNAVAILABLE."""
        if not self.recording:
            return
        from opentelemetry.metrics import Observation  # noqa: PLC0415 - the SDK's API, loaded with it

        def requests(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(count, {ERROR_TYPE: kind}) for kind, count in refused().items()]

        def connections(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(count, {"reason": reason}) for reason, count in closed().items()]

        m = self._meter
        m.create_observable_counter(
            "otelkv.requests.refused",
            [requests],
            "{request}",
            "Requests refused for now (retryable), by error.type: busy (delivery.max_inflight_bytes reached); "
            "queue mode: queue_full (delivery.queue_max_*), store_unavailable (disk full, I/O error)",
        )
        m.create_observable_counter(
            "otelkv.connections.closed",
            [connections],
            "{connection}",
            "HTTP connections otelkv closed, by reason: limit (receive.http.max_connections; answered 503, "
            "or closed before TLS), header_timeout (no whole request head within receive.http.read_header_timeout), "
            "tls_handshake (failed or timed out), handshake_limit (the oldest of too many TLS handshakes)",
        )

    def prometheus_text(self) -> bytes:
        """The metrics in the Prometheus text format (empty without a /metrics reader)."""
        if self._registry is None:
            return b""
        from prometheus_client import generate_latest  # noqa: PLC0415 - loaded with the registry

        return generate_latest(self._registry)

    def shutdown(self) -> None:
        """Flush and stop the readers; safe twice."""
        if self._provider is not None:
            self._provider.shutdown()
