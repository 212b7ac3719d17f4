"""Build the forwarder a configuration names, with its headers and credentials."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import urlsplit

from otelkv.config import AuthConfig, ConfigError, ForwardConfig, header_value_problem

from . import Forwarder
from .grpc import GrpcForwarder
from .http import HttpForwarder
from .stdout import StdoutForwarder


def make_forwarder(config: ForwardConfig, *, max_message_bytes: int) -> Forwarder:
    """The forwarder for ``config.endpoint`` (validated): stdout, OTLP/HTTP or OTLP/gRPC.

    ``max_message_bytes`` is what otelkv accepts; a forwarded request may be larger once enriched,
    so it is not a send limit (the target's own limit decides, and its refusal is its verdict).
    """
    if config.endpoint == "stdout":
        return StdoutForwarder()
    headers = dict(config.headers)
    if config.tenant:
        headers["X-Scope-OrgID"] = config.tenant
    authorization = _authorization(config.auth)
    if authorization:
        headers["Authorization"] = authorization
    parts = urlsplit(config.endpoint)
    if parts.scheme in ("grpc", "grpcs"):
        return GrpcForwarder(parts.netloc, secure=parts.scheme == "grpcs", headers=headers,
                             ca_file=config.tls.ca_file)  # fmt: skip
    return HttpForwarder(config.endpoint, headers=headers, ca_file=config.tls.ca_file,
                         insecure_skip_verify=config.tls.insecure_skip_verify,
                         compression=config.compression == "gzip")  # fmt: skip


def _secret(auth: AuthConfig, env_key: str, file_key: str) -> str | None:
    """A secret from the variable or file ``auth`` names; a :class:`ConfigError` naming that key when
    it cannot be sent in a header (the value itself is never shown)."""
    env, file = getattr(auth, env_key), getattr(auth, file_key)
    if env:
        key, value = env_key, os.environ[env].strip()
    elif file:
        key, value = file_key, Path(file).read_text().strip()
    else:
        return None
    problem = header_value_problem(value)
    if problem:
        raise ConfigError(f"forward.auth.{key}: the secret {problem}")
    return value


def _authorization(auth: AuthConfig) -> str | None:
    """The Authorization header value; its parts come from the environment or files only."""
    token = _secret(auth, "bearer_token_env", "bearer_token_file")
    if token:
        return f"Bearer {token}"
    password = _secret(auth, "password_env", "password_file")
    if auth.username and password is not None:
        return "Basic " + base64.b64encode(f"{auth.username}:{password}".encode()).decode()
    return None
