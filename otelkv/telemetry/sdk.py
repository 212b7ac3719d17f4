"""The OpenTelemetry metrics SDK behind :class:`otelkv.telemetry.metrics.Telemetry`: its readers
(Prometheus text for /metrics, OTLP/gRPC push), resource and views.

Imported only when a configuration has somewhere to put metrics (an HTTP listener serving
/metrics, or ``metrics_otlp_endpoint``): the SDK and prometheus_client are ~4 MiB of an idle
process (docs/performance.md, "A lighter sidecar").
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import OTELResourceDetector, Resource

from otelkv import __version__

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Seconds between two pushes of the OTLP reader (the Collector's own default is 60 s).
EXPORT_INTERVAL_MS: Final = 30_000
#: Seconds one push may take, retries included (the exporter's default, 10 s, is what the last
#: push at stop took when the collector in the pod had already gone: a stop within its grace
#: period took 7 s more). The collector is on loopback: an answer takes milliseconds.
EXPORT_TIMEOUT_S: Final = 2.0


def prometheus_registry() -> CollectorRegistry:
    """An instance-local registry for /metrics (nothing of the process-wide default one)."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415 - only with a /metrics listener

    return CollectorRegistry(auto_describe=True)


def _prometheus_reader(registry: CollectorRegistry) -> MetricReader:
    """The /metrics reader; without the ``otel_scope_*`` labels where the exporter can drop them
    (``scope_info_enabled``; versions without that option do not add the labels at all)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415

    options: dict[str, Any] = {"registry": registry, "disable_target_info": True}
    if "scope_info_enabled" in inspect.signature(PrometheusMetricReader.__init__).parameters:
        options["scope_info_enabled"] = False
    return PrometheusMetricReader(**options)


def meter_provider(
    *, registry: CollectorRegistry | None, otlp_endpoint: str | None, duration_buckets: tuple[float, ...]
) -> MeterProvider:
    """A provider with a Prometheus reader into ``registry`` (if given) and an OTLP/gRPC push
    reader to ``otlp_endpoint`` (if given); ``otelkv.forward.duration`` in ``duration_buckets``."""
    readers: list[MetricReader] = [_prometheus_reader(registry)] if registry is not None else []
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter  # noqa: PLC0415

        exporter = OTLPMetricExporter(endpoint=otlp_endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S)
        readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=EXPORT_INTERVAL_MS))
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over otelkv's defaults, as in every SDK
    # (Resource.create alone lets the attributes given here win over the variables).
    resource = Resource.create({"service.name": "otelkv", "service.version": __version__}).merge(
        OTELResourceDetector().detect()
    )
    seconds = View(
        instrument_name="otelkv.forward.duration", aggregation=ExplicitBucketHistogramAggregation(duration_buckets)
    )
    return MeterProvider(metric_readers=readers, resource=resource, views=[seconds])
