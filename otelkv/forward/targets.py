"""Build the forwarder a configuration names, with its headers and credentials."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.config import AuthConfig, ForwardConfig
from otelkv.errors import Retryable
from otelkv.secrets import read_secret, scrub, secret_values

from . import Delivery, Forwarder
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
    forwarder: Forwarder
    if parts.scheme in ("grpc", "grpcs"):
        forwarder = GrpcForwarder(parts.netloc, secure=parts.scheme == "grpcs", headers=headers,
                             ca_file=config.tls.ca_file, max_message_bytes=max_message_bytes)  # fmt: skip
    else:
        forwarder = HttpForwarder(config.endpoint, headers=headers, ca_file=config.tls.ca_file,
                                  insecure_skip_verify=config.tls.insecure_skip_verify,
                                  compression=config.compression == "gzip")  # fmt: skip
    secrets = secret_values(headers)
    return Redacting(forwarder, secrets) if secrets else forwarder


class Redacting:
    """A forwarder whose errors and messages never carry the credentials it sends.

    A target (or a proxy in front of it) may echo the request headers in its error body; that
    text goes to the client in UNAVAILABLE details and 503 bodies, to the logs and to the dead
    letters. The target URL stays in them: it names what failed and carries no credentials
    (``forward.endpoint`` refuses userinfo).
    """

    def __init__(self, inner: Forwarder, secrets: tuple[str, ...]) -> None:
        self.inner = inner
        self._secrets = secrets

    @property
    def target(self) -> str:
        """The inner forwarder's target."""
        return self.inner.target

    def send(self, request: ExportLogsServiceRequest, *, timeout: float) -> Delivery:
        """Send through the inner forwarder; credentials scrubbed from what it says."""
        try:
            delivery = self.inner.send(request, timeout=timeout)
        except Retryable as error:
            raise Retryable(scrub(str(error), self._secrets), retry_after=error.retry_after) from None
        if delivery.message:
            return Delivery(delivery.rejected, scrub(delivery.message, self._secrets))
        return delivery

    def close(self) -> None:
        """Close the inner forwarder."""
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _authorization(auth: AuthConfig) -> str | None:
    """The Authorization header value; its parts come from the environment or files only."""
    token = read_secret("forward.auth.bearer_token", env=auth.bearer_token_env, file=auth.bearer_token_file)
    if token:
        return f"Bearer {token}"
    password = read_secret("forward.auth.password", env=auth.password_env, file=auth.password_file)
    if auth.username and password is not None:
        return "Basic " + base64.b64encode(f"{auth.username}:{password}".encode()).decode()
    return None
