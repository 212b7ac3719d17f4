"""Build the forwarder a configuration names, with its headers and credentials."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from otelkv.config import AuthConfig, ForwardConfig
from otelkv.config.secrets import read_secret

from . import Forwarder
from .stdout import StdoutForwarder


def make_forwarder(config: ForwardConfig, *, max_message_bytes: int) -> Forwarder:
    """The forwarder for ``config.endpoint`` (validated): stdout, OTLP/HTTP or OTLP/gRPC."""
    if config.endpoint == "stdout":
        return StdoutForwarder()
    headers = dict(config.headers)
    if config.tenant:
        headers["X-Scope-OrgID"] = config.tenant
    authorization = _authorization(config.auth)
    if authorization:
        headers["Authorization"] = authorization
    parts = urlsplit(config.endpoint)
    forwarder: Forwarder
    # each target's client is imported only when configured (urllib3: only for an http(s) target)
    if parts.scheme in ("grpc", "grpcs"):
        from .grpc import GrpcForwarder  # noqa: PLC0415

        forwarder = GrpcForwarder(
            parts.netloc,
            secure=parts.scheme == "grpcs",
            headers=headers,
            ca_file=config.tls.ca_file,
            max_message_bytes=max_message_bytes,
        )
    else:
        from .http import HttpForwarder  # noqa: PLC0415

        forwarder = HttpForwarder(
            config.endpoint,
            headers=headers,
            ca_file=config.tls.ca_file,
            insecure_skip_verify=config.tls.insecure_skip_verify,
            compression=config.compression == "gzip",
        )
    return forwarder  # each forwarder redacts the credentials it sends from what the target says


def _authorization(auth: AuthConfig) -> str | None:
    """The Authorization header value; its parts come from the environment or files only."""
    token = read_secret("forward.auth.bearer_token", env=auth.bearer_token_env, file=auth.bearer_token_file)
    if token:
        return f"Bearer {token}"
    password = read_secret("forward.auth.password", env=auth.password_env, file=auth.password_file)
    if auth.username and password is not None:
        return "Basic " + base64.b64encode(f"{auth.username}:{password}".encode()).decode()
    return None
