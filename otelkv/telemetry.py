"""otelkv's own metrics, with the OpenTelemetry SDK: Prometheus text at /metrics, OTLP if asked."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from otelkv import __version__

if TYPE_CHECKING:
    from otelkv.store import Store


class Telemetry:
    """The counters and the latency histogram of one otelkv process (instance-local registry)."""

    def __init__(self, *, otlp_endpoint: str | None = None) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        readers: list[MetricReader] = [PrometheusMetricReader(registry=self._registry, disable_target_info=True)]
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter  # noqa: PLC0415

            exporter = OTLPMetricExporter(endpoint=otlp_endpoint, insecure=True)
            readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=30_000))
        resource = Resource.create({"service.name": "otelkv", "service.version": __version__})
        self._provider = MeterProvider(metric_readers=readers, resource=resource)
        meter = self._provider.get_meter("otelkv", __version__)
        records = "{record}"
        self.received = meter.create_counter("otelkv.records.received", records, "Log records received")
        self.enriched = meter.create_counter("otelkv.records.enriched", records, "KubeVirt event records enriched")
        self.forwarded = meter.create_counter("otelkv.records.forwarded", records, "Records the target accepted")
        self.rejected = meter.create_counter(
            "otelkv.records.rejected", records, "Records the target refused for good (partial success)"
        )
        self.failed = meter.create_counter(
            "otelkv.records.failed", records, "Records answered retryable: the target could not take them"
        )
        self.duplicates = meter.create_counter("otelkv.records.duplicates", records, "Exact duplicates dropped")
        self.dropped = meter.create_counter("otelkv.records.dropped", records, "Non-KubeVirt records dropped")
        self.bad_requests = meter.create_counter("otelkv.requests.invalid", "{request}", "Requests refused as bad")
        self.latency = meter.create_histogram("otelkv.forward.duration", "s", "Time to forward one request")
        self.dead_letters = meter.create_counter(
            "otelkv.records.dead_lettered", records, "Records kept as dead letters (given up on or refused)"
        )
        # receive side (issue 9): refusals for a missing or wrong bearer token
        self.unauthenticated = meter.create_counter(
            "otelkv.requests.unauthenticated", "{request}", "Requests refused for a missing or wrong bearer token"
        )
        self._meter = meter

    def observe_queue(self, store: Store) -> None:
        """Export the queue's depth, bytes and oldest age, and the corrupt entries skipped."""

        def depth(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.stats()[0])]

        def size(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.stats()[1])]

        def age(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.stats()[2] or 0.0)]

        def corrupt(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(store.corrupt)]

        m = self._meter
        m.create_observable_gauge("otelkv.queue.records", [depth], "{record}", "Records in the on-disk queue")
        m.create_observable_gauge("otelkv.queue.bytes", [size], "By", "Bytes in the on-disk queue")
        m.create_observable_gauge("otelkv.queue.oldest_age", [age], "s", "Age of the oldest queued batch")
        m.create_observable_counter("otelkv.queue.corrupt", [corrupt], "{entry}", "Corrupt queue entries skipped")

    def prometheus_text(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self._registry)

    def shutdown(self) -> None:
        """Flush and stop the readers; safe twice."""
        self._provider.shutdown()
