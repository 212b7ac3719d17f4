"""otelkv's view of itself: metrics (:mod:`.metrics`, the OpenTelemetry SDK: Prometheus text at
/metrics, OTLP when asked), logs (:mod:`.logs`, one JSON object a line) and failure streaks
(:mod:`.streak`: a run of failures logged once, then rate-limited, never per item).

The face imports nothing, so that a command reading logs does not load the metrics SDK.
"""

__all__: list[str] = []
