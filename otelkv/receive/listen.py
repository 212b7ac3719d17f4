"""Check a listen address before the servers bind it, so that a bad one is named in one line.

grpcio says only "Failed to bind to address …" (and, with its SO_REUSEPORT, may even share a
port another process holds); the HTTP server's OSError names no address. A trial bind of a plain
socket tells which key is wrong and why.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
from collections.abc import Iterator

from otelkv.config import Config, split_host_port
from otelkv.errors import UserError


class ListenError(UserError, OSError):
    """A listen address cannot be used; the message names the key (or flag) and the address."""


def listen_keys(config: Config) -> Iterator[str]:
    """The configuration keys that hold a listen address (``grpc_listen``, ``http_listen``, …);
    not those left empty (no such listener)."""
    for f in dataclasses.fields(config):
        if f.name.endswith("_listen") and isinstance(getattr(config, f.name), str) and getattr(config, f.name):
            yield f.name


_WHY = {
    errno.EADDRINUSE: "address already in use (another process listens there)",
    errno.EADDRNOTAVAIL: "not an address of this machine",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def bind_family(host: str) -> socket.AddressFamily:
    """The address family the HTTP listener binds for ``host`` (and the trial bind checks): IPv6
    for an IPv6 literal, else IPv4, so ``""`` and ``0.0.0.0`` are every IPv4 address, as in
    ``socket.create_server``. The trial bind used to take getaddrinfo's first answer, which for
    ``""`` may be ``::`` (IPv6 first in gai.conf): it checked another socket than the one bound."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_listen(key: str, address: str, *, flag: str | None = None, in_use_ok: bool = False) -> None:
    """Raise :class:`ListenError` when ``address`` cannot be listened on, naming ``key``.

    ``in_use_ok``: a port another process holds passes (``check-config`` beside a running serve).
    """
    name = f"{flag} ({key})" if flag else key
    host, port = split_host_port(address)
    try:
        infos = socket.getaddrinfo(
            host or None, port, family=bind_family(host), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as error:
        raise ListenError(f"{name}: cannot listen on {address}: cannot resolve {host!r} ({error})") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as trial:
        trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
        try:
            trial.bind(sockaddr)
        except OSError as error:
            if in_use_ok and error.errno == errno.EADDRINUSE:
                return
            why = _WHY.get(error.errno or 0, error.strerror or str(error))
            raise ListenError(f"{name}: cannot listen on {address}: {why}") from None
