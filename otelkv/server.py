"""``otelkv serve``: put the pipeline between the receivers and the forwarder; start and stop."""

from __future__ import annotations

import gc
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from otelkv.config import Config, ConfigError, split_host_port
from otelkv.config.secrets import read_token
from otelkv.delivery.tracker_state import PersistentTracker, state_path
from otelkv.delivery.window_state import SavedWindow, restore, window_path
from otelkv.forward import Forwarder
from otelkv.forward.targets import make_forwarder
from otelkv.kubevirt import MigrationTracker
from otelkv.otlp import native
from otelkv.otlp.enrich import EnrichOptions
from otelkv.pipeline import DeliveredKeys, InflightBytes, Pipeline, Settings
from otelkv.receive.connections import closed_connections
from otelkv.receive.grpc_server import GrpcReceiver
from otelkv.receive.memory import tune_malloc
from otelkv.receive.security import BearerAuth, GrpcAuthInterceptor, ServerTLS
from otelkv.telemetry.health import Health
from otelkv.telemetry.metrics import Telemetry

if TYPE_CHECKING:
    from otelkv.receive.grpc_health import HealthListener
    from otelkv.receive.http_server import HttpReceiver

log = logging.getLogger(__name__)


def is_loopback(address: str) -> bool:
    """Whether ``HOST:PORT`` listens on this host only (127.0.0.0/8, ::1, localhost)."""
    host = split_host_port(address)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def delivered_keys(config: Config, tracker: MigrationTracker) -> DeliveredKeys:
    """The duplicate window; with a store, restored from beside it before serving, and saved with
    the tracker's migrations from then on (``otelkv/delivery/window_state.py``)."""
    delivered = DeliveredKeys(config.enrich.dedup_window)
    store_path, max_bytes = config.delivery.store_path, config.delivery.saved_window_max_bytes
    if isinstance(tracker, PersistentTracker) and store_path:
        saved = window_path(store_path)
        delivered.restore(restore(saved, max_bytes, delivered.size))
        tracker.keep_window(SavedWindow(saved, delivered, max_bytes=max_bytes))
    return delivered


class Service:
    """One otelkv process: binds at construction (fail fast), serves after :meth:`start`."""

    def __init__(self, config: Config, *, forwarder: Forwarder | None = None) -> None:
        self.config = config
        tune_malloc()  # freed request memory goes back to the system (docs/reliability.md#memory)
        enrich, delivery = config.enrich, config.delivery
        # the SDK only where the metrics go: /metrics on an HTTP listener, or OTLP (telemetry/metrics.py)
        scraped = bool(config.admin_listen or config.http_listen)
        self.telemetry = Telemetry(otlp_endpoint=config.metrics_otlp_endpoint, prometheus=scraped)
        self.store = None
        if delivery.store_path:  # sqlite3, the store and its sender only for a configuration with a store
            import sqlite3  # noqa: PLC0415

            from otelkv.delivery.store import Store  # noqa: PLC0415

            try:
                self.store = Store(
                    delivery.store_path,
                    max_bytes=delivery.queue_max_bytes,
                    max_records=delivery.queue_max_records,
                    max_dead_letters=delivery.dead_letter_max_entries,
                    durable=delivery.fsync == "durable",
                )
            except sqlite3.Error as error:  # fail fast, naming the key
                raise ConfigError(f"delivery.store_path: cannot open {delivery.store_path!r}: {error}") from error
            self.telemetry.observe_queue(self.store)
        queue = delivery.mode == "queue"
        refusing = self.store.refusing if queue and self.store else None
        health = Health(config.unready_after_failing_seconds, refusing=refusing)
        forward = forwarder or make_forwarder(config.forward, max_message_bytes=config.max_message_bytes)
        # with a store, the tracker's migrations survive a restart (delivery/tracker_state.py)
        entries, ttl = enrich.max_migrations, timedelta(seconds=enrich.migration_ttl_seconds)
        self.tracker = (
            PersistentTracker(state_path(delivery.store_path), max_entries=entries, ttl=ttl)
            if delivery.store_path
            else MigrationTracker(max_entries=entries, ttl=ttl)
        )
        self.pipeline = Pipeline(
            forward,
            self.tracker,
            delivered_keys(config, self.tracker),
            telemetry=self.telemetry,
            health=health,
            settings=Settings(
                EnrichOptions(
                    frozenset(enrich.kinds),
                    enrich.service_name,
                    enrich.drop_others,
                    forward_objects=enrich.forward_objects,
                    summaries=enrich.summaries,
                ),
                config.forward.timeout,
                config.max_message_bytes,
                queue=queue,
                retry=delivery.retry,
            ),
            store=self.store,
            inflight=InflightBytes(delivery.max_inflight_bytes),
        )
        self.sender = None
        if queue and self.store is not None:
            from otelkv.delivery.sender import QueueSender  # noqa: PLC0415

            self.sender = QueueSender(
                self.store,
                forward,
                retry=delivery.retry,
                timeout=config.forward.timeout,
                telemetry=self.telemetry,
                health=health,
            )
        receive = config.receive
        tls = ServerTLS(receive.tls) if receive.tls.cert_file else None
        token = read_token(env=receive.auth.bearer_token_env, file=receive.auth.bearer_token_file)
        auth = BearerAuth(token, refused=lambda: self.telemetry.unauthenticated.add(1)) if token else None
        self._grpc = GrpcReceiver(
            self.pipeline,
            config.grpc_listen,
            max_message_bytes=config.max_message_bytes,
            limits=receive.grpc,
            credentials=tls.grpc_credentials() if tls else None,
            interceptors=[GrpcAuthInterceptor(auth)] if auth else [],
        )
        self._http, self._admin = self._http_listeners(auth.check if auth else None, tls)
        self._health: HealthListener | None = None
        if config.admin_grpc_listen:  # the kubelet's grpc probes (receive/grpc_health.py)
            from otelkv.receive.grpc_health import HealthListener  # noqa: PLC0415

            self._health = HealthListener(health, config.admin_grpc_listen)
        self.admin_port = self._admin.port if self._admin else None
        self.admin_grpc_port = self._health.port if self._health else None
        listeners = [r.connections for r in (self._http, self._admin) if r is not None]
        by_store = self.pipeline.refused if self.pipeline.settings.queue else {}  # queue mode's error types
        self.telemetry.observe_refusals(
            lambda: {"busy": self.pipeline.inflight.refused, **by_store}, lambda: closed_connections(listeners)
        )
        # who may write: a token, or a client certificate (mTLS); TLS alone proves no identity
        self._auth = "bearer token" if auth else "mTLS" if tls and tls.mutual else "none"
        self._tls = ("mTLS" if tls.mutual else "TLS") if tls else "off"
        self._open = [
            key
            for key in ("grpc_listen", "http_listen")
            if self._auth == "none" and getattr(config, key) and not is_loopback(getattr(config, key))
        ]
        self.grpc_port = self._grpc.port
        #: The OTLP/HTTP listener's port; 0: none (``http_listen`` empty).
        self.http_port = self._http.port if self._http else 0
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    def _http_listeners(
        self, authorize: Callable[[str | None], str | None] | None, tls: ServerTLS | None
    ) -> tuple[HttpReceiver | None, HttpReceiver | None]:
        """The OTLP/HTTP listener and the HTTP admin one, each if configured; aiohttp is imported
        only when one of them is (docs/performance.md, "A lighter sidecar")."""
        config = self.config
        if not (config.http_listen or config.admin_listen):
            return None, None
        from otelkv.receive.http_server import HttpOptions, HttpReceiver  # noqa: PLC0415

        receive = config.receive
        protect = receive.auth.protect_metrics
        http = None
        if config.http_listen:
            options = HttpOptions(
                receive.http,
                config.max_message_bytes,
                tls=tls,
                authorize=authorize,
                protect_metrics=protect,
                admin=not config.admin_listen,
            )
            http = HttpReceiver(self.pipeline, self.telemetry, config.http_listen, options)
        # the admin listener: plain HTTP for the kubelet's probes and Prometheus (docs/security.md)
        admin = None
        if config.admin_listen:
            options = HttpOptions(
                receive.http, config.max_message_bytes, otlp=False, protect_metrics=protect, authorize=authorize
            )
            admin = HttpReceiver(self.pipeline, self.telemetry, config.admin_listen, options)
        return http, admin

    def start(self) -> None:
        """Serve gRPC, and HTTP and the admin listeners if configured."""
        if self.sender is not None:
            self.sender.start()
        self._grpc.start()
        for listener in (self._http, self._admin, self._health):
            if listener is not None:
                listener.start()
        if isinstance(self.tracker, PersistentTracker):  # the end of a burst is saved too
            self.tracker.start_saver()
        # What start-up made (modules, classes, the configuration: ~32,000 objects) lives as long as
        # the process: out of the collector's sight, a full collection under load no longer walks it
        # (7.4 ms each before; docs/performance.md).
        gc.collect()
        gc.freeze()
        for key in self._open:
            log.warning(
                "%s %s is reachable beyond this host without a bearer token or client certificates: "
                "anyone who reaches it writes into the target and can spend its memory (docs/security.md)",
                key,
                getattr(self.config, key),
            )
        log.info(
            "otelkv serving",
            extra={
                "grpc_listen": self.config.grpc_listen,
                "http_listen": self.config.http_listen,
                "admin_listen": self.config.admin_listen,
                "admin_grpc_listen": self.config.admin_grpc_listen,
                "auth": self._auth,
                "tls": self._tls,
                "grpc_port": self.grpc_port,
                "http_port": self.http_port or None,
                "admin_port": self.admin_port,
                "admin_grpc_port": self.admin_grpc_port,
                "forward": self.pipeline.forwarder.target,
                "core": native.description(),
            },
        )

    def stop(self, grace: float | None = None) -> None:
        """Readiness false, refuse new requests, finish in-flight ones within the grace period.

        Safe to call twice, and before :meth:`start`.
        """
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = self.config.shutdown_grace_seconds if grace is None else grace
            self.pipeline.health.draining = True
            self._grpc.drain()
            log.info("otelkv draining", extra={"grace_seconds": grace})
            deadline = time.monotonic() + grace
            self._grpc.stop(grace)
            if self._http is not None:
                self._http.stop(max(0.0, deadline - time.monotonic()))
            if self._admin is not None:
                self._admin.stop(0.5)
            if self.sender is not None:  # queue mode: send what is queued, within what is left
                self.sender.stop(max(0.0, deadline - time.monotonic()))
            if isinstance(self.tracker, PersistentTracker):  # keep the migrations
                self.tracker.stop_saver()  # saves what changed since the last write
            # the metrics' last push reads the queue's gauges: before the store closes
            self.telemetry.shutdown()
            if self.store is not None:
                self.store.close()
            self.pipeline.forwarder.close()
            if self._health is not None:  # last: readiness said NOT_SERVING through the drain
                self._health.stop(0.5)
            self._stopped.set()
            log.info("otelkv stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped; True if it stopped."""
        return self._stopped.wait(timeout)
