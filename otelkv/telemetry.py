"""otelkv's own metrics, with the OpenTelemetry SDK: Prometheus text at /metrics, OTLP if asked."""

from __future__ import annotations

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from otelkv import __version__


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

    def prometheus_text(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self._registry)

    def shutdown(self) -> None:
        """Flush and stop the readers; safe twice."""
        self._provider.shutdown()
