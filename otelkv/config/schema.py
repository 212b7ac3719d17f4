"""The root of otelkv's configuration: one dataclass tree, defaults in one place, one ``validate``.

Each section (``forward``, ``enrich``, ``delivery``, ``receive``) is a dataclass of its own module
with its own ``validate``; :class:`Config` holds the top-level keys and checks them in a fixed
order, so the first wrong key is always the one named. Loading (file, environment, flags) is
:mod:`otelkv.config.load`'s.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Final

from otelkv.config.delivery import DeliveryConfig
from otelkv.config.enrich import EnrichConfig
from otelkv.config.forward import ForwardConfig
from otelkv.config.receive import ReceiveConfig
from otelkv.config.values import Duration, MiB, Size, host_port, positive
from otelkv.errors import ConfigError

__all__ = ["LOG_LEVELS", "Config"]

#: The log levels, in any case, with the Collector's spellings (``warn``): each to otelkv's own.
LOG_LEVELS: Final = {"debug": "debug", "info": "info", "warn": "warning", "warning": "warning", "error": "error"}


def _otlp_metrics_missing() -> bool:
    """Whether the exporter ``metrics_otlp_endpoint`` needs (the extra ``otlp-metrics``) is absent;
    looked for, not imported (only its parent namespace packages are)."""
    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is None
    except ModuleNotFoundError:  # a parent package is missing
        return True


@dataclass
class Config:
    """Everything ``otelkv serve`` needs."""

    #: Sidecar-friendly defaults: the collector's own receivers hold the pod IP on 4317/4318.
    grpc_listen: str = "127.0.0.1:4319"
    #: OTLP/HTTP (and, without ``admin_listen``, /healthz, /readyz, /metrics); empty: no HTTP
    #: listener at all (aiohttp is then not even imported: docs/performance.md, "A lighter sidecar").
    http_listen: str = "127.0.0.1:4320"
    #: Largest request accepted; the collector's ``send_batch_max_size`` keeps batches below it.
    max_message_bytes: Size = 4 * MiB
    #: Seconds to finish in-flight requests after SIGTERM.
    shutdown_grace_seconds: Duration = 20.0
    #: ``/readyz`` is false while the target has failed for this long without a success since.
    unready_after_failing_seconds: Duration = 30.0
    log_level: str = "info"
    #: ``console`` or ``json``; empty: console on a terminal, JSON otherwise (the Collector's rule).
    log_format: str | None = None
    #: OTLP/gRPC endpoint for otelkv's own metrics (``host:port``); empty: /metrics only.
    metrics_otlp_endpoint: str | None = None
    forward: ForwardConfig = field(default_factory=ForwardConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    #: Health, readiness and metrics on a listener of their own (``HOST:PORT``); empty: on http_listen.
    admin_listen: str | None = None
    #: The gRPC health service alone (liveness ``""``, readiness ``readiness``) on a listener of its
    #: own (``HOST:PORT``), for the kubelet's ``grpc`` probes; empty: none.
    admin_grpc_listen: str | None = None
    receive: ReceiveConfig = field(default_factory=ReceiveConfig)

    def validate(self, *, offline: bool = False) -> None:
        """Raise :class:`ConfigError` naming the first wrong key.

        ``offline``: skip what needs this machine's environment (variables, files).
        """
        host_port("grpc_listen", self.grpc_listen)
        if self.http_listen:  # "": no HTTP listener
            host_port("http_listen", self.http_listen)
        positive("max_message_bytes", self.max_message_bytes)
        positive("shutdown_grace_seconds", self.shutdown_grace_seconds)
        positive("unready_after_failing_seconds", self.unready_after_failing_seconds)
        level = LOG_LEVELS.get(self.log_level.strip().lower())
        if level is None:
            raise ConfigError(f"log_level: must be debug, info, warn (warning) or error, got {self.log_level!r}")
        self.log_level = level  # one spelling from here on, whichever the user wrote
        if self.log_format is not None:
            if self.log_format.strip().lower() not in ("console", "json"):
                raise ConfigError(f"log_format: must be console or json, got {self.log_format!r}")
            self.log_format = self.log_format.strip().lower()
        if self.metrics_otlp_endpoint:
            host_port("metrics_otlp_endpoint", self.metrics_otlp_endpoint)
            if not offline and _otlp_metrics_missing():
                raise ConfigError(
                    "metrics_otlp_endpoint: needs the OTLP metrics exporter, which is not installed: "
                    "pip install 'otelkv[otlp-metrics]'"
                )
        self.forward.validate(sync=self.delivery.mode == "sync", offline=offline)
        self.enrich.validate()
        self.delivery.validate(self.max_message_bytes)
        for key in ("admin_listen", "admin_grpc_listen"):
            if getattr(self, key):
                host_port(key, getattr(self, key))
        self._validate_distinct_listeners()
        self.receive.validate(self.max_message_bytes, offline=offline)

    def _validate_distinct_listeners(self) -> None:
        """Two listeners on one address: the second bind would fail with a message naming no key."""
        seen: dict[tuple[str, int], str] = {}
        for key in ("grpc_listen", "http_listen", "admin_listen", "admin_grpc_listen"):
            value = getattr(self, key)
            if not value:
                continue
            host, port = host_port(key, value)
            if port == 0:  # the system picks a free port for each
                continue
            for (other_host, other_port), other in seen.items():
                wildcard = {host, other_host} & {"0.0.0.0", "::", ""}
                if port == other_port and (host == other_host or wildcard):
                    raise ConfigError(
                        f"{key}: {value} overlaps {other} ({getattr(self, other)}); give each listener a "
                        "port of its own"
                    )
            seen[(host, port)] = key
