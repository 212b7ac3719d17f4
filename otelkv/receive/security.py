"""TLS, mTLS and bearer-token authentication for the listeners (``receive.tls``, ``receive.auth``).

Certificates are re-read when their files change, without a restart (a cert-manager renewal):

- gRPC: ``grpc.dynamic_ssl_server_credentials`` asks :meth:`ServerTLS.grpc_fetch` at every new
  connection's handshake; it answers the files' new contents once they changed (stat: inode, size,
  mtime), so a renewed certificate and CA bundle serve the next connection.
- HTTP: the listener's ``ssl.SSLContext`` is kept, and :meth:`ServerTLS.refresh` (run every
  second in its event loop) loads a changed certificate and key into it: OpenSSL copies them into
  each new connection. A changed client CA bundle is added to the trusted ones; a CA removed from
  the file stays trusted until the restart.

The token is compared in constant time and never logged or returned to a client.
"""

from __future__ import annotations

import hmac
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc

from otelkv.config import ReceiveTLSConfig
from otelkv.errors import ConfigError, Unauthenticated, grpc_answer

log = logging.getLogger(__name__)

REFUSED: Final = "missing or wrong bearer token"
_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _stamp(path: str | None) -> tuple[int, int, int] | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class ServerTLS:
    """The listeners' certificate, key and client CA, re-read when their files change."""

    def __init__(self, config: ReceiveTLSConfig) -> None:
        assert config.cert_file and config.key_file
        self.config = config
        self._stamps = self._current_stamps()
        self.context = self._new_context()

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate (mTLS)."""
        return bool(self.config.client_ca_file)

    def _current_stamps(self) -> tuple[Any, ...]:
        c = self.config
        return _stamp(c.cert_file), _stamp(c.key_file), _stamp(c.client_ca_file)

    def _new_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _VERSIONS[self.config.min_version]
        # TLS 1.2 renegotiation is a client's way to make the server redo handshakes: never needed
        context.options |= ssl.OP_NO_RENEGOTIATION
        self._load(context)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _load(self, context: ssl.SSLContext) -> None:
        c = self.config
        try:
            context.load_cert_chain(str(c.cert_file), str(c.key_file))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"receive.tls.cert_file: cannot load {c.cert_file!r} with receive.tls.key_file {c.key_file!r} "
                f"(a PEM certificate and its PEM key): {_reason(error)}"
            ) from error
        if c.client_ca_file:
            try:
                context.load_verify_locations(c.client_ca_file)
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(
                    f"receive.tls.client_ca_file: cannot load {c.client_ca_file!r} (PEM CA certificates): "
                    f"{_reason(error)}"
                ) from error
            context.verify_mode = ssl.CERT_REQUIRED

    def refresh(self) -> bool:
        """Load changed files into the HTTP context; True if they changed. A bad new file is logged
        and the previous certificate kept."""
        stamps = self._current_stamps()
        if stamps == self._stamps:
            return False
        self._stamps = stamps
        try:
            # A pair that does not load (a half-rotated certificate and key, a cut file) must
            # never reach the live context: load_cert_chain would replace its certificate and
            # then fail on the key, leaving every new handshake to fail. Try a scratch one first.
            self._load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
            self._load(self.context)
        except ConfigError as error:
            log.error("keeping the previous TLS certificate: %s", error)
            return False
        log.info("TLS certificate files changed: reloaded")
        return True

    def _grpc_config(self) -> Any:
        c = self.config
        roots = Path(c.client_ca_file).read_bytes() if c.client_ca_file else None
        pair = (Path(str(c.key_file)).read_bytes(), Path(str(c.cert_file)).read_bytes())
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=roots)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials whose certificates follow the files (the fetcher runs at each handshake)."""
        seen = [self._current_stamps()]

        def fetch() -> Any:
            stamps = self._current_stamps()
            if stamps == seen[0]:
                return None
            seen[0] = stamps  # a bad file is logged once, not at every handshake until it is fixed
            try:
                fresh = self._grpc_config()
            except (OSError, ValueError) as error:
                log.error("keeping the previous gRPC TLS certificate: %s", error)
                return None
            log.info("gRPC TLS certificate files changed: reloaded")
            return fresh

        return grpc.dynamic_ssl_server_credentials(
            self._grpc_config(), fetch, require_client_authentication=self.mutual
        )


@dataclass(frozen=True, slots=True)
class BearerAuth:
    """Checks ``Authorization: Bearer <token>`` in constant time; counts refusals."""

    token: str
    refused: Callable[[], None] = lambda: None

    def check(self, header: str | None) -> str | None:
        """None when ``header`` carries the token, else why not (the token never appears)."""
        scheme, _, given = (header or "").partition(" ")
        ok = hmac.compare_digest(given.strip().encode(), self.token.encode()) and scheme.lower() == "bearer"
        if ok:
            return None
        self.refused()
        return REFUSED


class GrpcAuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED for calls without the token, except the health service (always open)."""

    def __init__(self, auth: BearerAuth) -> None:
        self._auth = auth

        answer = grpc_answer(Unauthenticated(REFUSED))

        async def deny(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            await context.abort(answer.code, answer.details)

        # Request-streaming, so that grpc hands over the call before reading its message: a unary
        # handler is called only once the whole message (up to max_message_bytes) is in memory,
        # so a caller without the token could pin that much per stream.
        self._deny: grpc.RpcMethodHandler[Any, Any] = grpc.stream_unary_rpc_method_handler(deny)

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        """Pass the call on when it carries the token (or is a health check), else refuse it."""
        if details.method.startswith("/grpc.health.v1.Health/"):
            return await continuation(details)
        header = next((v for k, v in details.invocation_metadata or () if k == "authorization"), None)
        if self._auth.check(header if isinstance(header, str) else None) is None:
            return await continuation(details)
        return self._deny


def _reason(error: OSError | ssl.SSLError) -> str:
    """What ssl says, without its ``[SSL] PEM lib (_ssl.c:3900)`` internals where it has a reason."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.replace("_", " ").lower()
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)
