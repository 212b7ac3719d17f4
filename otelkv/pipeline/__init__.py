"""The one path every request takes, whatever its transport: enrich, send (with retry in sync
mode) or enqueue, settle — counted (:mod:`.export`); with the in-flight memory cap
(:mod:`.inflight`) and the duplicate window (:mod:`.dedup`) beside it."""

from otelkv.pipeline.dedup import DeliveredKeys
from otelkv.pipeline.export import Pipeline, Settings
from otelkv.pipeline.inflight import InflightBytes, Reservation

__all__ = ["DeliveredKeys", "InflightBytes", "Pipeline", "Reservation", "Settings"]
