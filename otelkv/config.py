"""otelkv's configuration: one dataclass tree, defaults in one place, one ``validate``.

Sources, later ones winning: the defaults below, the YAML file (``--config``), the environment
(:data:`ENVIRONMENT`, the one list of every variable otelkv reads) and command-line flags.
Every error names the YAML key it is about (``forward.endpoint: …``).
"""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import yaml

MiB: Final = 1024 * 1024


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with its YAML key."""


@dataclass
class TLSConfig:
    """TLS towards the target (https:// and grpcs://)."""

    ca_file: str | None = None
    insecure_skip_verify: bool = False


@dataclass
class AuthConfig:
    """Credentials for the target, read from the environment or a file — never from the YAML."""

    bearer_token_env: str | None = None
    bearer_token_file: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None


@dataclass
class ForwardConfig:
    """Where enriched records go."""

    #: ``stdout``; ``http(s)://host[:port]/path`` (OTLP/HTTP, ``/v1/logs`` appended; Loki:
    #: ``http://loki-gateway.loki.svc.cluster.local/otlp``); ``grpc(s)://host:port``.
    endpoint: str = "stdout"
    #: Seconds for one attempt; below the collector's 5 s per attempt so it hears our answer.
    timeout: float = 4.0
    #: Sent as ``X-Scope-OrgID`` (Loki with ``auth_enabled: true``, the chart's default).
    tenant: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    compression: str = "gzip"
    auth: AuthConfig = field(default_factory=AuthConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)


@dataclass
class EnrichConfig:
    """What is a KubeVirt event, and what to do with the rest."""

    kinds: list[str] = field(default_factory=lambda: ["VirtualMachineInstance", "VirtualMachineInstanceMigration"])
    service_name: str = "kubevirt-events"
    drop_others: bool = False
    #: Migrations the tracker remembers, and for how long without an event (event time).
    max_migrations: int = 10_000
    migration_ttl_seconds: float = 6 * 3600.0
    #: Delivered (uid, count) keys remembered to drop exact duplicates.
    dedup_window: int = 50_000
    # -- migration objects and summaries (issue 10) --
    #: Forward the k8sobjects records of VirtualMachineInstanceMigration objects, or only read them.
    forward_objects: bool = False
    #: One kubevirt.migration.summary record per migration that ends.
    summaries: bool = True


@dataclass
class RetryConfig:
    """Backoff between attempts to forward one batch (queue mode), and when to give up on it."""

    initial_interval: float = 1.0
    max_interval: float = 30.0
    multiplier: float = 1.5
    #: Each wait is drawn from [wait x (1 - jitter), wait x (1 + jitter)].
    jitter: float = 0.5
    #: After this long a batch is dead-lettered rather than retried forever.
    max_elapsed: float = 3600.0


@dataclass
class DeliveryConfig:
    """When the collector is told "accepted", and what otelkv holds meanwhile."""

    #: ``sync``: only after the target accepted. ``queue``: once written to the on-disk queue.
    mode: str = "sync"
    #: The SQLite file of the queue and of dead letters. Required in queue mode; in sync mode,
    #: when set, batches the target refuses for good are kept there as dead letters.
    store_path: str | None = None
    #: ``durable``: fsync every commit (SQLite synchronous=FULL); ``normal``: WAL checkpoints only.
    fsync: str = "durable"
    queue_max_bytes: int = 256 * MiB
    queue_max_records: int = 1_000_000
    dead_letter_max_entries: int = 10_000
    #: Request bytes being received and processed at once; beyond it, UNAVAILABLE / 503.
    max_inflight_bytes: int = 64 * MiB
    retry: RetryConfig = field(default_factory=RetryConfig)


@dataclass
class Config:
    """Everything ``otelkv serve`` needs."""

    #: Sidecar-friendly defaults: the collector's own receivers hold the pod IP on 4317/4318.
    grpc_listen: str = "0.0.0.0:4319"
    http_listen: str = "0.0.0.0:4320"
    #: Largest request accepted; the collector's ``send_batch_max_size`` keeps batches below it.
    max_message_bytes: int = 16 * MiB
    #: Seconds to finish in-flight requests after SIGTERM.
    shutdown_grace_seconds: float = 20.0
    #: ``/readyz`` is false while the target has failed for this long without a success since.
    unready_after_failing_seconds: float = 30.0
    log_level: str = "info"
    #: OTLP/gRPC endpoint for otelkv's own metrics (``host:port``); empty: /metrics only.
    metrics_otlp_endpoint: str | None = None
    forward: ForwardConfig = field(default_factory=ForwardConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first wrong key."""
        for key in ("grpc_listen", "http_listen"):
            _host_port(key, getattr(self, key))
        _positive("max_message_bytes", self.max_message_bytes)
        _positive("shutdown_grace_seconds", self.shutdown_grace_seconds)
        _positive("unready_after_failing_seconds", self.unready_after_failing_seconds)
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level: must be debug, info, warning or error, got {self.log_level!r}")
        if self.metrics_otlp_endpoint:
            _host_port("metrics_otlp_endpoint", self.metrics_otlp_endpoint)
        self._validate_forward()
        enrich = self.enrich
        if not enrich.kinds or not all(enrich.kinds):
            raise ConfigError("enrich.kinds: must list at least one object kind")
        if not enrich.service_name:
            raise ConfigError("enrich.service_name: must not be empty")
        for key in ("max_migrations", "migration_ttl_seconds", "dedup_window"):
            _positive(f"enrich.{key}", getattr(enrich, key))
        self._validate_delivery()

    def _validate_delivery(self) -> None:
        d = self.delivery
        if d.mode not in ("sync", "queue"):
            raise ConfigError(f"delivery.mode: must be sync or queue, got {d.mode!r}")
        if d.fsync not in ("durable", "normal"):
            raise ConfigError(f"delivery.fsync: must be durable or normal, got {d.fsync!r}")
        if d.mode == "queue" and not d.store_path:
            raise ConfigError("delivery.store_path: queue mode needs a file for its queue (on a volume)")
        for key in ("queue_max_bytes", "queue_max_records", "dead_letter_max_entries", "max_inflight_bytes"):
            _positive(f"delivery.{key}", getattr(d, key))
        if d.max_inflight_bytes < self.max_message_bytes:
            raise ConfigError(
                f"delivery.max_inflight_bytes: must be at least max_message_bytes ({self.max_message_bytes}), "
                f"got {d.max_inflight_bytes}"
            )
        r = d.retry
        for key in ("initial_interval", "max_interval", "max_elapsed"):
            _positive(f"delivery.retry.{key}", getattr(r, key))
        if r.multiplier < 1:
            raise ConfigError(f"delivery.retry.multiplier: must be at least 1, got {r.multiplier!r}")
        if not 0 <= r.jitter < 1:
            raise ConfigError(f"delivery.retry.jitter: must be in [0, 1), got {r.jitter!r}")

    def _validate_forward(self) -> None:
        f = self.forward
        endpoint = f.endpoint
        parts = urlsplit(endpoint)
        if endpoint != "stdout":
            if parts.scheme not in ("http", "https", "grpc", "grpcs") or not parts.hostname:
                raise ConfigError(
                    f"forward.endpoint: must be stdout, http(s)://host[:port][/path] or grpc(s)://host:port, "
                    f"got {endpoint!r}"
                )
            try:
                port = parts.port
            except ValueError as error:
                raise ConfigError(f"forward.endpoint: bad port in {endpoint!r}") from error
            if parts.scheme.startswith("grpc") and (port is None or parts.path not in ("", "/")):
                raise ConfigError(f"forward.endpoint: grpc(s):// needs host:port and no path, got {endpoint!r}")
        _positive("forward.timeout", f.timeout)
        if f.compression not in ("gzip", "none"):
            raise ConfigError(f"forward.compression: must be gzip or none, got {f.compression!r}")
        if f.tls.insecure_skip_verify and parts.scheme == "grpcs":
            raise ConfigError("forward.tls.insecure_skip_verify: not supported for grpcs://; give tls.ca_file")
        if f.tls.ca_file and not Path(f.tls.ca_file).is_file():
            raise ConfigError(f"forward.tls.ca_file: no such file {f.tls.ca_file!r}")
        a = f.auth
        if (a.bearer_token_env or a.bearer_token_file) and (a.username or a.password_env or a.password_file):
            raise ConfigError("forward.auth: choose a bearer token or a username and password, not both")
        if bool(a.username) != bool(a.password_env or a.password_file):
            raise ConfigError("forward.auth.username: needs password_env or password_file, and the other way round")
        for key in ("bearer_token_file", "password_file"):
            path = getattr(a, key)
            if path and not Path(path).is_file():
                raise ConfigError(f"forward.auth.{key}: no such file {path!r}")
        for key in ("bearer_token_env", "password_env"):
            name = getattr(a, key)
            if name and name not in os.environ:
                raise ConfigError(f"forward.auth.{key}: environment variable {name!r} is not set")
        for name in f.headers:
            if name.lower() in ("content-type", "content-encoding", "content-length"):
                raise ConfigError(f"forward.headers.{name}: set by otelkv, cannot be overridden")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: must be greater than 0, got {value!r}")


def _host_port(key: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{key}: must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) as a pair; the value must have passed validation."""
    return _host_port("address", value)


#: Every environment variable otelkv reads, and the key it sets.
ENVIRONMENT: Final[Mapping[str, str]] = {
    "OTELKV_GRPC_LISTEN": "grpc_listen",
    "OTELKV_HTTP_LISTEN": "http_listen",
    "OTELKV_FORWARD_ENDPOINT": "forward.endpoint",
    "OTELKV_FORWARD_TENANT": "forward.tenant",
    "OTELKV_FORWARD_TIMEOUT": "forward.timeout",
    "OTELKV_MAX_MESSAGE_BYTES": "max_message_bytes",
    "OTELKV_LOG_LEVEL": "log_level",
    "OTELKV_METRICS_OTLP_ENDPOINT": "metrics_otlp_endpoint",
}
#: Also read: ``OTELKV_CONFIG`` (the YAML file when ``--config`` is not given), and the variables
#: named by ``forward.auth.bearer_token_env`` / ``password_env``.
CONFIG_FILE_ENV: Final = "OTELKV_CONFIG"


def load(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build and validate the configuration from a file, the environment and flag overrides.

    ``overrides`` maps dotted keys (``forward.endpoint``) to values; None values are ignored.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_FILE_ENV) or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as error:
            raise ConfigError(f"{path}: cannot read: {error.strerror}") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: must be a mapping of keys, got {type(loaded).__name__}")
        data = loaded or {}
    for name, key in ENVIRONMENT.items():
        if environ.get(name):
            _set_dotted(data, key, environ[name])
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    config: Config = build(Config, data, "")
    config.validate()
    return config


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for parent in parents:
        data = data.setdefault(parent, {})
    data[last] = value


def build(cls: type[Any], data: Mapping[str, Any], prefix: str) -> Any:
    """An instance of dataclass ``cls`` from ``data``; unknown keys and wrong types are errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    values = {name: _convert(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value if value is not None else {}, f"{key}.")
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a mapping, got {type(value).__name__}")
        return {str(k): _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    return _scalar(hint, value, key)


def _scalar(hint: type[Any], value: Any, key: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{key}: must be {hint.__name__}, got {value!r}")


def to_dict(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data (credentials are only env names and paths)."""
    return dataclasses.asdict(config)
