"""otelkv's configuration: one dataclass tree, defaults in one place, one ``validate``.

Sources, later ones winning: the defaults below, the YAML file (``--config``), the environment
(:data:`ENVIRONMENT`, the one list of every variable otelkv reads) and command-line flags.
Every error names the YAML key it is about (``forward.endpoint: …``), or the environment variable
or flag that set the value (``OTELKV_FORWARD_ENDPOINT (forward.endpoint): …``). The file takes the
Collector's notation: durations (``5s``), sizes (``16MiB``), ``${env:NAME}`` (:mod:`otelkv.notation`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from otelkv import notation

MiB: Final = 1024 * 1024
_TEN_YEARS: Final = 10 * 365 * 86400.0
#: A number of seconds, or a duration in the Collector's notation (``5s``, ``500ms``).
Duration = Annotated[float, "duration"]
#: A number of bytes, or a size with a unit (``16MiB``).
Size = Annotated[int, "size"]
#: The collector's otlp/otlphttp exporters give each attempt this long (``timeout: 5s``).
COLLECTOR_ATTEMPT_SECONDS: Final = 5.0
#: The memory one request takes, in multiples of its size: gzip'ed body, inflated body and its
#: decoded form (otelkv.receive.DECODE_COST); see docs/reliability.md.
REQUEST_COST: Final = 10


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
    timeout: Duration = 4.0
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
    migration_ttl_seconds: Duration = 6 * 3600.0
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

    initial_interval: Duration = 1.0
    max_interval: Duration = 30.0
    multiplier: float = 1.5
    #: Each wait is drawn from [wait x (1 - jitter), wait x (1 + jitter)].
    jitter: float = 0.5
    #: After this long a batch is dead-lettered rather than retried forever.
    max_elapsed: Duration = 3600.0


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
    queue_max_bytes: Size = 256 * MiB
    queue_max_records: int = 1_000_000
    dead_letter_max_entries: int = 10_000
    #: Memory that requests being received and processed may take at once (wire, inflated and
    #: decoded bytes, docs/reliability.md); beyond it, UNAVAILABLE / 503.
    max_inflight_bytes: Size = 64 * MiB
    retry: RetryConfig = field(default_factory=RetryConfig)


# -- receive: the listeners' limits, TLS and authentication (docs/configuration.md#receive) --------


@dataclass
class ReceiveHTTPConfig:
    """The OTLP/HTTP listener's limits, named after the Collector's confighttp."""

    #: Seconds to receive a request's headers, from its first byte.
    read_header_timeout: Duration = 10.0
    #: Seconds to receive a whole request, headers and body (a slow upload ends here: 408).
    read_timeout: Duration = 30.0
    #: Seconds a keep-alive connection may wait for its next request.
    idle_timeout: Duration = 60.0
    #: Largest body on the wire; empty: ``max_message_bytes``.
    max_request_body_size: Size | None = None
    #: Open connections; beyond it a new one is answered 503 and closed.
    max_connections: int = 256
    #: The listen socket's backlog of connections not yet accepted.
    backlog: int = 128


@dataclass
class ReceiveGRPCConfig:
    """The OTLP/gRPC listener's limits, named after the Collector's configgrpc keepalive."""

    max_concurrent_streams: int = 16
    #: Open connections; beyond it a new one is closed at once.
    max_connections: int = 256
    #: Seconds without a call before a connection is closed (GOAWAY); 0: never.
    max_connection_idle: Duration = 300.0
    #: Seconds before a connection is asked to reconnect (spreads clients over replicas); 0: never.
    max_connection_age: Duration = 0.0
    #: Seconds a connection past its age may finish its calls.
    max_connection_age_grace: Duration = 30.0
    #: Keepalive enforcement: clients pinging more often than this are disconnected.
    keepalive_min_time: Duration = 10.0
    #: Keepalive enforcement: whether clients may ping while no call is open.
    keepalive_permit_without_stream: bool = False
    #: Threads handling calls at once.
    workers: int = 8


@dataclass
class ReceiveTLSConfig:
    """TLS on both OTLP listeners (and the admin one); files re-read when they change."""

    cert_file: str | None = None
    key_file: str | None = None
    #: mTLS: clients must present a certificate signed by one of these CAs.
    client_ca_file: str | None = None
    min_version: str = "1.2"


@dataclass
class ReceiveAuthConfig:
    """A bearer token every OTLP request must carry (never in the YAML itself)."""

    bearer_token_file: str | None = None
    bearer_token_env: str | None = None
    #: /metrics asks for the token too when one is set.
    protect_metrics: bool = True


@dataclass
class ReceiveConfig:
    """How otelkv takes requests: limits, TLS, authentication."""

    http: ReceiveHTTPConfig = field(default_factory=ReceiveHTTPConfig)
    grpc: ReceiveGRPCConfig = field(default_factory=ReceiveGRPCConfig)
    tls: ReceiveTLSConfig = field(default_factory=ReceiveTLSConfig)
    auth: ReceiveAuthConfig = field(default_factory=ReceiveAuthConfig)

    def validate(self, max_message_bytes: int, *, offline: bool = False) -> None:
        """Raise :class:`ConfigError` naming the first wrong ``receive.`` key (``offline``: files
        and environment variables are another machine's, not checked)."""
        h, g, t, a = self.http, self.grpc, self.tls, self.auth
        for key in ("read_header_timeout", "read_timeout", "idle_timeout", "max_connections", "backlog"):
            _positive(f"receive.http.{key}", getattr(h, key))
        if h.max_request_body_size is not None:
            _positive("receive.http.max_request_body_size", h.max_request_body_size)
        for key in ("max_concurrent_streams", "max_connections", "keepalive_min_time", "workers"):
            _positive(f"receive.grpc.{key}", getattr(g, key))
        for key in ("max_connection_idle", "max_connection_age", "max_connection_age_grace"):
            if getattr(g, key) < 0:
                raise ConfigError(f"receive.grpc.{key}: must be 0 (never) or more, got {getattr(g, key)!r}")
        if t.min_version not in ("1.2", "1.3"):
            raise ConfigError(f"receive.tls.min_version: must be 1.2 or 1.3, got {t.min_version!r}")
        if bool(t.cert_file) != bool(t.key_file):
            raise ConfigError("receive.tls.cert_file: needs key_file, and the other way round")
        if t.client_ca_file and not t.cert_file:
            raise ConfigError("receive.tls.client_ca_file: needs cert_file and key_file (mTLS is TLS first)")
        if a.bearer_token_file and a.bearer_token_env:
            raise ConfigError("receive.auth: choose bearer_token_file or bearer_token_env, not both")
        if offline:
            return
        for key in ("cert_file", "key_file", "client_ca_file"):
            path = getattr(t, key)
            if path and not Path(path).is_file():
                raise ConfigError(f"receive.tls.{key}: no such file {path!r}")
        if a.bearer_token_file and not Path(a.bearer_token_file).is_file():
            raise ConfigError(f"receive.auth.bearer_token_file: no such file {a.bearer_token_file!r}")
        if a.bearer_token_env and not os.environ.get(a.bearer_token_env):
            raise ConfigError(f"receive.auth.bearer_token_env: environment variable {a.bearer_token_env!r} is not set")
        # read it as serve will (check-config checks what serve checks)
        from otelkv.receive.security import read_token  # noqa: PLC0415 - it builds on this module

        read_token(a)


@dataclass
class Config:
    """Everything ``otelkv serve`` needs."""

    #: Sidecar-friendly defaults: the collector's own receivers hold the pod IP on 4317/4318.
    grpc_listen: str = "0.0.0.0:4319"
    http_listen: str = "0.0.0.0:4320"
    #: Largest request accepted; the collector's ``send_batch_max_size`` keeps batches below it.
    max_message_bytes: Size = 4 * MiB
    #: Seconds to finish in-flight requests after SIGTERM.
    shutdown_grace_seconds: Duration = 20.0
    #: ``/readyz`` is false while the target has failed for this long without a success since.
    unready_after_failing_seconds: Duration = 30.0
    log_level: str = "info"
    #: OTLP/gRPC endpoint for otelkv's own metrics (``host:port``); empty: /metrics only.
    metrics_otlp_endpoint: str | None = None
    forward: ForwardConfig = field(default_factory=ForwardConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    #: Health, readiness and metrics on a listener of their own (``HOST:PORT``); empty: on http_listen.
    admin_listen: str | None = None
    receive: ReceiveConfig = field(default_factory=ReceiveConfig)

    def validate(self, *, offline: bool = False) -> None:
        """Raise :class:`ConfigError` naming the first wrong key.

        ``offline``: skip what needs this machine's environment (variables, files, the store).
        """
        for key in ("grpc_listen", "http_listen"):
            _host_port(key, getattr(self, key))
        _positive("max_message_bytes", self.max_message_bytes)
        _positive("shutdown_grace_seconds", self.shutdown_grace_seconds)
        _positive("unready_after_failing_seconds", self.unready_after_failing_seconds)
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level: must be debug, info, warning or error, got {self.log_level!r}")
        if self.metrics_otlp_endpoint:
            _host_port("metrics_otlp_endpoint", self.metrics_otlp_endpoint)
        self._validate_forward(offline=offline)
        enrich = self.enrich
        if not enrich.kinds or not all(enrich.kinds):
            raise ConfigError("enrich.kinds: must list at least one object kind")
        if not enrich.service_name:
            raise ConfigError("enrich.service_name: must not be empty")
        for key in ("max_migrations", "migration_ttl_seconds", "dedup_window"):
            _positive(f"enrich.{key}", getattr(enrich, key))
        if enrich.migration_ttl_seconds > _TEN_YEARS:  # timedelta would overflow far beyond it
            raise ConfigError(f"enrich.migration_ttl_seconds: at most {_TEN_YEARS:.0f} (ten years), "
                              f"got {enrich.migration_ttl_seconds!r}")  # fmt: skip
        self._validate_delivery(offline=offline)
        if self.admin_listen:
            _host_port("admin_listen", self.admin_listen)
        self._validate_distinct_listeners()
        self.receive.validate(self.max_message_bytes, offline=offline)

    def _validate_distinct_listeners(self) -> None:
        """Two listeners on one address: the second bind would fail with a message naming no key."""
        seen: dict[tuple[str, int], str] = {}
        for key in ("grpc_listen", "http_listen", "admin_listen"):
            value = getattr(self, key)
            if not value:
                continue
            host, port = _host_port(key, value)
            if port == 0:  # the system picks a free port for each
                continue
            for (other_host, other_port), other in seen.items():
                wildcard = {host, other_host} & {"0.0.0.0", "::", ""}
                if port == other_port and (host == other_host or wildcard):
                    raise ConfigError(f"{key}: {value} overlaps {other} ({getattr(self, other)}); give each listener a "
                                      "port of its own")  # fmt: skip
            seen[(host, port)] = key

    def _validate_delivery(self, *, offline: bool) -> None:
        d = self.delivery
        if d.mode not in ("sync", "queue"):
            raise ConfigError(f"delivery.mode: must be sync or queue, got {d.mode!r}")
        if d.fsync not in ("durable", "normal"):
            raise ConfigError(f"delivery.fsync: must be durable or normal, got {d.fsync!r}")
        if d.mode == "queue" and not d.store_path:
            raise ConfigError("delivery.store_path: queue mode needs a file for its queue (on a volume)")
        for key in ("queue_max_bytes", "queue_max_records", "dead_letter_max_entries", "max_inflight_bytes"):
            _positive(f"delivery.{key}", getattr(d, key))
        # One request of max_message_bytes must fit: its wire bytes, inflated bytes and decoded form.
        needed = self.max_message_bytes * REQUEST_COST
        if d.max_inflight_bytes < needed:
            raise ConfigError(
                f"delivery.max_inflight_bytes: must be at least {REQUEST_COST} x max_message_bytes ({needed}): "
                f"the memory one request of that size takes, got {d.max_inflight_bytes}"
            )
        r = d.retry
        for key in ("initial_interval", "max_interval", "max_elapsed"):
            _positive(f"delivery.retry.{key}", getattr(r, key))
        if r.multiplier < 1:
            raise ConfigError(f"delivery.retry.multiplier: must be at least 1, got {r.multiplier!r}")
        if not 0 <= r.jitter < 1:
            raise ConfigError(f"delivery.retry.jitter: must be in [0, 1), got {r.jitter!r}")
        if d.store_path and not offline:
            from otelkv.configfile import check_store_path  # noqa: PLC0415 - configfile builds on this module

            check_store_path(d.store_path)

    def _validate_forward(self, *, offline: bool) -> None:
        f = self.forward
        endpoint = f.endpoint
        if "@" in endpoint.partition("://")[2].partition("/")[0]:  # never echo the URL: it carries a password
            raise ConfigError(
                "forward.endpoint: credentials in the URL (user:password@) are not used and not allowed; "
                "set forward.auth.username with password_env/password_file, or bearer_token_env/_file"
            )
        try:
            parts = urlsplit(endpoint)
        except ValueError as error:  # "Invalid IPv6 URL"
            raise ConfigError(f"forward.endpoint: {error}, got {endpoint!r}") from None
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
        if f.timeout >= COLLECTOR_ATTEMPT_SECONDS and self.delivery.mode == "sync":
            raise ConfigError(
                f"forward.timeout: must be below {COLLECTOR_ATTEMPT_SECONDS:g}s in sync mode, got {f.timeout:g}s: "
                "the collector's exporter gives each attempt 5s and would give up before otelkv answers; "
                "for a slower target use delivery.mode: queue"
            )
        if f.compression not in ("gzip", "none"):
            raise ConfigError(f"forward.compression: must be gzip or none, got {f.compression!r}")
        if f.tls.insecure_skip_verify and parts.scheme == "grpcs":
            raise ConfigError("forward.tls.insecure_skip_verify: not supported for grpcs://; give tls.ca_file")
        if f.tls.ca_file and not offline and not Path(f.tls.ca_file).is_file():
            raise ConfigError(f"forward.tls.ca_file: no such file {f.tls.ca_file!r}")
        a = f.auth
        for name in f.headers:
            if name.lower() in ("content-type", "content-encoding", "content-length"):
                raise ConfigError(f"forward.headers.{name}: set by otelkv, cannot be overridden")
            # Header names are case-insensitive: a second spelling would go out beside (or instead
            # of) the configured tenant or credentials, and the target would take either.
            if name.lower() == "x-scope-orgid" and f.tenant:
                raise ConfigError(f"forward.headers.{name}: the tenant is forward.tenant; set one of them, not both")
            if name.lower() == "authorization" and (a.bearer_token_env or a.bearer_token_file or a.username):
                raise ConfigError(f"forward.headers.{name}: forward.auth sets Authorization; set one of them, not both")
        if (a.bearer_token_env or a.bearer_token_file) and (a.username or a.password_env or a.password_file):
            raise ConfigError("forward.auth: choose a bearer token or a username and password, not both")
        if bool(a.username) != bool(a.password_env or a.password_file):
            raise ConfigError("forward.auth.username: needs password_env or password_file, and the other way round")
        for key in ("bearer_token_file", "password_file"):
            path = getattr(a, key)
            if offline:
                break
            if path and not Path(path).is_file():
                raise ConfigError(f"forward.auth.{key}: no such file {path!r}")
        for key in ("bearer_token_env", "password_env"):
            name = getattr(a, key)
            if name and not offline and name not in os.environ:
                raise ConfigError(f"forward.auth.{key}: environment variable {name!r} is not set")
        if not offline:  # read them as serve will: a token with a line break inside fails here
            from otelkv.secrets import read_secret  # noqa: PLC0415 - secrets builds on this module

            read_secret("forward.auth.bearer_token", env=a.bearer_token_env, file=a.bearer_token_file)
            read_secret("forward.auth.password", env=a.password_env, file=a.password_file)
        _validate_metadata(f, grpc=parts.scheme.startswith("grpc"), offline=offline)


# -- forward.tenant and forward.headers: only what HTTP and gRPC metadata both carry ------------------
# A value either refuses (CR/LF, tab, non-ASCII: gRPC's "INTERNAL: Invalid metadata", http.client's
# ValueError) fails every request after start-up; refused here instead, naming the key.
_FIELD_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 token)
_GRPC_KEY: Final = re.compile(r"[0-9a-z_.-]+")  # a gRPC custom metadata key, once lower-cased
_TENANT: Final = re.compile(r"[0-9A-Za-z!_.*'()-]{1,150}")  # Grafana's tenant ID rule (Loki, Mimir)


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be an HTTP header or gRPC metadata value (printable ASCII), or None.

    Never quotes the value (it may be a credential): only the first bad character and where.
    """
    for position, char in enumerate(value):
        if not " " <= char <= "~":
            return (f"must be printable ASCII (no control characters, tabs, CR/LF or non-ASCII): "
                    f"U+{ord(char):04X} at position {position}")  # fmt: skip
    return None


def _validate_metadata(f: ForwardConfig, *, grpc: bool, offline: bool = False) -> None:
    def unexpanded(value: str) -> bool:  # --offline keeps ${env:X} of another machine as written
        return offline and "${" in value

    tenant = f.tenant
    if tenant and not unexpanded(tenant) and (not _TENANT.fullmatch(tenant) or tenant in (".", "..")):
        raise ConfigError(
            "forward.tenant: must be 1-150 of A-Z a-z 0-9 ! - _ . * ' ( ) and not . or .. (Loki's tenant ID "
            f"rule), got {f.tenant!r}"
        )
    for name, value in f.headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ConfigError(f"forward.headers.{name}: not a valid header name")
        if grpc and (not _GRPC_KEY.fullmatch(name.lower()) or name.lower().startswith("grpc-")
                     or name.lower().endswith("-bin")):  # fmt: skip
            raise ConfigError(f"forward.headers.{name}: not a valid gRPC metadata key (a-z 0-9 - _ ., not grpc-*, "
                              "not *-bin)")  # fmt: skip
        problem = None if unexpanded(value) else header_value_problem(value)
        if problem:
            raise ConfigError(f"forward.headers.{name}: {problem}")


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
    "OTELKV_ADMIN_LISTEN": "admin_listen",
}
#: Also read: ``OTELKV_CONFIG`` (the YAML file when ``--config`` is not given), ``OTELKV_NO_EXTENSIONS``
#: (``otelkv.otlp.native.NO_EXTENSIONS_ENV``, which core runs) and the variables named by
#: ``forward.auth.bearer_token_env`` / ``password_env``.
CONFIG_FILE_ENV: Final = "OTELKV_CONFIG"


def load(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
    offline: bool = False,
) -> Config:
    """Build and validate the configuration from a file, the environment and flag overrides.

    ``overrides`` maps dotted keys (``forward.endpoint``) to values; None values are ignored.
    ``flags`` names the flag of an override key (``--forward``), for error messages.
    ``offline``: skip the checks that need this machine (``check-config --offline``).
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_FILE_ENV) or None
    data: dict[str, Any] = {}
    if path is not None:
        from otelkv.configfile import read_file  # noqa: PLC0415 - configfile builds on this module

        data = read_file(Path(path), environ, offline=offline)
    sources: dict[str, str] = {}
    for name, key in ENVIRONMENT.items():
        if environ.get(name):
            _set_dotted(data, key, environ[name])
            sources[key] = name
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
            sources[key] = (flags or {}).get(key, key)
    try:
        config: Config = build(Config, data, "")
        config.validate(offline=offline)
    except ConfigError as error:
        key, sep, rest = str(error).partition(": ")
        if sep and sources.get(key, key) != key:
            raise ConfigError(f"{sources[key]} ({key}): {rest}") from None
        raise
    return config


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for depth, parent in enumerate(parents):
        data = data.setdefault(parent, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{'.'.join(parents[: depth + 1])}: must be a mapping, got {type(data).__name__}")
    data[last] = value


def build(cls: type[Any], data: Mapping[str, Any], prefix: str) -> Any:
    """An instance of dataclass ``cls`` from ``data``; unknown keys and wrong types are errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls, include_extras=True)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    values = {name: _convert(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value if value is not None else {}, f"{key}.")
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return _notation(args[0], args[1], value, key)
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


def _notation(hint: type[Any], kind: str, value: Any, key: str) -> Any:
    """A duration (seconds) or a size (bytes): a number, or text in the Collector's notation."""
    if isinstance(value, str):
        try:
            return notation.parse_duration(value) if kind == "duration" else notation.parse_size(value)
        except ValueError as error:
            raise ConfigError(f"{key}: {error}") from None
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
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return notation.finite(float(value))
            if isinstance(value, str):
                return notation.finite(float(value))
        except ValueError as error:
            if "finite" in str(error):
                raise ConfigError(f"{key}: {error}") from None
        except OverflowError:
            raise ConfigError(f"{key}: must be a finite number, got {value!r}") from None
    elif hint is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{key}: must be {hint.__name__}, got {value!r}")


def to_dict(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data (credentials are only env names and paths)."""
    return dataclasses.asdict(config)
