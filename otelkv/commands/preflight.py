"""The checks ``serve`` makes of this machine before it starts, in one function that
``check-config`` runs too, so that what one passes the other does not refuse."""

from __future__ import annotations

import ssl

from otelkv.config import Config
from otelkv.errors import ConfigError
from otelkv.receive.listen import check_listen, listen_keys

__all__ = ["preflight", "warnings_of"]


def preflight(config: Config, *, flags: dict[str, str] | None = None, in_use_ok: bool = False) -> list[str]:
    """Raise :class:`~otelkv.errors.ConfigError` or :class:`~otelkv.receive.listen.ListenError` naming the key
    (or ``flags``' flag) that this machine cannot serve: the store, the TLS files (loaded as serve
    loads them), then each listen address. Returns warnings: what serve accepts but that is
    likely a mistake.

    ``in_use_ok``: a port another process holds passes (``check-config`` beside a running serve).
    """
    if config.delivery.store_path:
        from otelkv.delivery.store_check import check_store_path  # noqa: PLC0415 - sqlite3 only with a store

        check_store_path(config.delivery.store_path)
    if config.receive.tls.cert_file:  # load it as serve will: a file that is not PEM fails here
        from otelkv.receive.security import ServerTLS  # noqa: PLC0415 - grpc only with TLS

        ServerTLS(config.receive.tls)
    ca_file = config.forward.tls.ca_file
    if ca_file and config.forward.endpoint.startswith(("https://", "grpcs://")):
        try:
            ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"forward.tls.ca_file: cannot load {ca_file!r} (PEM CA certificates): {error}") from None
    for key in listen_keys(config):
        check_listen(key, getattr(config, key), flag=(flags or {}).get(key), in_use_ok=in_use_ok)
    return warnings_of(config)


def warnings_of(config: Config) -> list[str]:
    """What serve accepts in ``config`` but that is likely a mistake, one line each, naming the key."""
    endpoint = config.forward.endpoint
    if not endpoint.startswith(("http://", "https://")):
        return []
    from otelkv.forward.http import endpoint_warning  # noqa: PLC0415 - urllib3 only for an HTTP target

    warning = endpoint_warning(endpoint)
    return [warning] if warning is not None else []
