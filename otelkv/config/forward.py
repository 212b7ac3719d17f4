"""``forward:`` — where enriched records go, with what credentials, TLS and metadata."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from otelkv.config.secrets import read_secret
from otelkv.config.values import Duration, missing, positive
from otelkv.errors import ConfigError

__all__ = ["COLLECTOR_ATTEMPT_SECONDS", "AuthConfig", "ForwardConfig", "TLSConfig", "header_value_problem"]

#: The collector's otlp/otlphttp exporters give each attempt this long (``timeout: 5s``).
COLLECTOR_ATTEMPT_SECONDS: Final = 5.0


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

    def validate(self, *, sync: bool, offline: bool = False) -> None:
        """Raise :class:`ConfigError` naming the first wrong ``forward.`` key (``sync``: delivery.mode is
        sync; ``offline``: files and environment variables are another machine's, not checked)."""
        f = self
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
        positive("forward.timeout", f.timeout)
        if f.timeout >= COLLECTOR_ATTEMPT_SECONDS and sync:
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
            raise ConfigError(f"forward.tls.ca_file: {missing(f.tls.ca_file)}")
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
                raise ConfigError(f"forward.auth.{key}: {missing(path)}")
        for key in ("bearer_token_env", "password_env"):
            name = getattr(a, key)
            if name and not offline and name not in os.environ:
                raise ConfigError(f"forward.auth.{key}: environment variable {name!r} is not set")
        if not offline:  # read them as serve will: a token with a line break inside fails here
            read_secret("forward.auth.bearer_token", env=a.bearer_token_env, file=a.bearer_token_file)
            read_secret("forward.auth.password", env=a.password_env, file=a.password_file)
        _validate_metadata(f, grpc=parts.scheme.startswith("grpc"), offline=offline)


# -- forward.tenant and forward.headers: only what HTTP and gRPC metadata both carry ------------------
# A value either refuses (CR/LF, tab, non-ASCII: gRPC's "INTERNAL: Invalid metadata", http.client's
# ValueError) fails every request after start-up; refused here instead, naming the key.
_FIELD_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 token)
_GRPC_KEY: Final = re.compile(r"[0-9a-z_.-]+")  # a gRPC custom metadata key, once lower-cased
#: Grafana's tenant ID rule (Loki, Mimir): 1-150 of these characters, not ``.`` or ``..``.
TENANT: Final = re.compile(r"(?!\.\.?$)[0-9A-Za-z!_.*'()-]{1,150}")
TENANT_RULE: Final = "must be 1-150 of A-Z a-z 0-9 ! - _ . * ' ( ) and not . or .. (Loki's tenant ID rule)"


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be an HTTP header or gRPC metadata value (printable ASCII), or None.

    Never quotes the value (it may be a credential): only the first bad character and where.
    """
    for position, char in enumerate(value):
        if not " " <= char <= "~":
            return (
                f"must be printable ASCII (no control characters, tabs, CR/LF or non-ASCII): "
                f"U+{ord(char):04X} at position {position}"
            )
    return None


def _validate_metadata(f: ForwardConfig, *, grpc: bool, offline: bool = False) -> None:
    def unexpanded(value: str) -> bool:  # --offline keeps ${env:X} of another machine as written
        return offline and "${" in value

    tenant = f.tenant
    if tenant and not unexpanded(tenant) and not TENANT.fullmatch(tenant):
        raise ConfigError(f"forward.tenant: {TENANT_RULE}, got {f.tenant!r}")
    for name, value in f.headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ConfigError(f"forward.headers.{name}: not a valid header name")
        if grpc and (
            not _GRPC_KEY.fullmatch(name.lower()) or name.lower().startswith("grpc-") or name.lower().endswith("-bin")
        ):
            raise ConfigError(
                f"forward.headers.{name}: not a valid gRPC metadata key (a-z 0-9 - _ ., not grpc-*, not *-bin)"
            )
        problem = None if unexpanded(value) else header_value_problem(value)
        if problem:
            raise ConfigError(f"forward.headers.{name}: {problem}")
