"""``receive:`` — how otelkv takes requests: the listeners' limits, TLS and authentication
(docs/configuration.md#receive)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from otelkv.config.secrets import read_token
from otelkv.config.values import Duration, Size, missing, positive
from otelkv.errors import ConfigError

_INT32: Final = 2**31 - 1
#: The largest value each key can take (durations in seconds: grpc counts milliseconds in an int).
_MOST: Final = {
    "http.backlog": 65535,
    "http.max_connections": 1_000_000,
    "grpc.max_concurrent_streams": _INT32,
    "grpc.max_connections": 1_000_000,
    "grpc.workers": 1024,
    **{
        f"grpc.{k}": _INT32 / 1000
        for k in (
            "max_connection_idle",
            "max_connection_age",
            "max_connection_age_grace",
            "keepalive_min_time",
            "handshake_timeout",
        )
    },
    **{f"http.{k}": 86400 * 365 for k in ("read_header_timeout", "read_timeout", "idle_timeout")},
}

__all__ = ["ReceiveAuthConfig", "ReceiveConfig", "ReceiveGRPCConfig", "ReceiveHTTPConfig", "ReceiveTLSConfig"]


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
    #: Seconds for a new connection's TLS and HTTP/2 preface; a connection that says nothing is closed.
    handshake_timeout: Duration = 5.0
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
            positive(f"receive.http.{key}", getattr(h, key))
        if h.max_request_body_size is not None:
            positive("receive.http.max_request_body_size", h.max_request_body_size)
        for key in ("max_concurrent_streams", "max_connections", "handshake_timeout", "keepalive_min_time", "workers"):
            positive(f"receive.grpc.{key}", getattr(g, key))
        for key in ("max_connection_idle", "max_connection_age", "max_connection_age_grace"):
            if getattr(g, key) < 0:
                raise ConfigError(f"receive.grpc.{key}: must be 0 (never) or more, got {getattr(g, key)!r}")
        # What the servers take: grpc's channel arguments are C ints (milliseconds for durations),
        # the listen backlog a kernel's int; beyond, serve would fail after check-config passed.
        for key, most in _MOST.items():
            section, name = key.split(".")
            value = getattr(h if section == "http" else g, name)
            if value > most:
                raise ConfigError(f"receive.{key}: at most {int(most)}, got {value!r}")
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
                raise ConfigError(f"receive.tls.{key}: {missing(path)}")
        if a.bearer_token_file and not Path(a.bearer_token_file).is_file():
            raise ConfigError(f"receive.auth.bearer_token_file: {missing(a.bearer_token_file)}")
        if a.bearer_token_env and not os.environ.get(a.bearer_token_env):
            raise ConfigError(f"receive.auth.bearer_token_env: environment variable {a.bearer_token_env!r} is not set")
        # read it as serve will (check-config checks what serve checks)
        read_token(env=a.bearer_token_env, file=a.bearer_token_file)
