"""Build the forwarder a configuration names, with its headers and credentials."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import urlsplit

from otelkv.config import AuthConfig, ForwardConfig

from . import Forwarder
from .grpc import GrpcForwarder
from .http import HttpForwarder
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
    if parts.scheme in ("grpc", "grpcs"):
        return GrpcForwarder(parts.netloc, secure=parts.scheme == "grpcs", headers=headers,
                             ca_file=config.tls.ca_file, max_message_bytes=max_message_bytes)  # fmt: skip
    return HttpForwarder(config.endpoint, headers=headers, ca_file=config.tls.ca_file,
                         insecure_skip_verify=config.tls.insecure_skip_verify,
                         compression=config.compression == "gzip")  # fmt: skip


def _secret(env: str | None, file: str | None) -> str | None:
    if env:
        return os.environ[env].strip()
    if file:
        return Path(file).read_text().strip()
    return None


def _authorization(auth: AuthConfig) -> str | None:
    """The Authorization header value; its parts come from the environment or files only."""
    token = _secret(auth.bearer_token_env, auth.bearer_token_file)
    if token:
        return f"Bearer {token}"
    password = _secret(auth.password_env, auth.password_file)
    if auth.username and password is not None:
        return "Basic " + base64.b64encode(f"{auth.username}:{password}".encode()).decode()
    return None
