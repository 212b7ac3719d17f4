"""The checks ``serve`` makes of this machine before it starts, in one function that
``check-config`` runs too, so that what one passes the other does not refuse."""

from __future__ import annotations

from otelkv.config import Config
from otelkv.receive.listen import check_listen, listen_keys

__all__ = ["preflight"]


def preflight(config: Config, *, flags: dict[str, str] | None = None, in_use_ok: bool = False) -> None:
    """Raise :class:`~otelkv.errors.ConfigError` or :class:`~otelkv.receive.listen.ListenError` naming the key
    (or ``flags``' flag) that this machine cannot serve: the store, then each listen address.

    ``in_use_ok``: a port another process holds passes (``check-config`` beside a running serve).
    """
    if config.delivery.store_path:
        from otelkv.delivery.store_check import check_store_path  # noqa: PLC0415 - sqlite3 only with a store

        check_store_path(config.delivery.store_path)
    for key in listen_keys(config):
        check_listen(key, getattr(config, key), flag=(flags or {}).get(key), in_use_ok=in_use_ok)
