"""The HTTP listener's open connections: at most ``max_connections``, headers within a deadline.

aiohttp has neither limit, so each connection's protocol is wrapped in a :class:`ConnectionGuard`
that counts it (beyond the limit: a 503 and close, before anything is read) and closes it when
a request's headers do not arrive within ``read_header_timeout`` of its first byte (or of the
connection). Runs in the event loop's thread only.

With TLS the listener accepts plain TCP and the guard starts TLS itself (``loop.start_tls``),
after counting: asyncio's own TLS server allocates ~310 KiB per accepted connection before its
handshake and before any protocol of otelkv's sees it, so 1,000 stalled handshakes held 343 MiB.
Here a connection beyond ``max_connections`` is aborted before TLS state exists, at most
``MAX_HANDSHAKES`` handshakes are in progress (a new one beyond that ends the oldest: a stalled
handshake is old, a real one takes milliseconds), each within the handshake deadline.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

#: TLS handshakes in progress at once on one listener (each ~60 KiB while it lasts).
MAX_HANDSHAKES: Final = 64
#: asyncio's TLS protocol allocates a read buffer this large per connection (256 KiB by default):
#: 32 KiB is what one TLS record needs; 256 connections at the cap then hold 8 MiB, not 64.
TLS_READ_BUFFER: Final = 32 * 1024

#: The answer to a connection beyond the limit: retryable, and nothing read.
_BUSY: Final = b"otelkv is busy: too many connections\n"
REFUSAL: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


class Connections:
    """The open connections of one listener, by transport."""

    def __init__(
        self,
        limit: int,
        header_timeout: float,
        *,
        tls: ssl.SSLContext | None = None,
        max_handshakes: int = MAX_HANDSHAKES,
    ) -> None:
        self.limit = limit
        self.header_timeout = header_timeout
        #: TLS started by the guard, with this (live) context: certificate reloads reach new connections.
        self.tls = tls
        self.max_handshakes = max_handshakes
        self.open: dict[Any, ConnectionGuard] = {}
        #: The raw transports whose TLS handshake is in progress, oldest first.
        self.handshaking: OrderedDict[Any, ConnectionGuard] = OrderedDict()
        #: Connections refused at the limit, closed for slow headers, whose TLS handshake failed or
        #: timed out, and ended as the oldest handshake in progress (tests; metrics: closed_connections).
        self.refused = 0
        self.timed_out = 0
        self.tls_failed = 0
        self.tls_evicted = 0
        if tls is not None and hasattr(asyncio.sslproto.SSLProtocol, "max_size"):
            # a class attribute (start_tls takes no buffer size); only the receivers use asyncio TLS
            asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER

    def busy(self, transport: Any) -> ConnectionGuard | None:
        """A request's headers arrived on ``transport``: stop its header deadline."""
        guard = self.open.get(transport)
        if guard is not None:
            guard.busy()
        return guard

    def close_all(self) -> None:
        """Close every connection still open (the end of a shutdown)."""
        for transport in list(self.open):
            transport.abort()


def closed_connections(listeners: Sequence[Connections]) -> dict[str, int]:
    """The connections ``listeners`` closed so far, by reason (metrics): ``limit``, ``header_timeout``,
    ``tls_handshake`` (failed or timed out), ``handshake_limit`` (the oldest of too many in progress)."""
    return {
        "limit": sum(c.refused for c in listeners),
        "header_timeout": sum(c.timed_out for c in listeners),
        "tls_handshake": sum(c.tls_failed for c in listeners),
        "handshake_limit": sum(c.tls_evicted for c in listeners),
    }


class ConnectionGuard(asyncio.Protocol):
    """Wraps the aiohttp protocol of one connection (see the module's docstring)."""

    def __init__(self, connections: Connections, inner: Any) -> None:
        self._connections = connections
        self._inner = inner
        self._transport: Any = None
        self._refused = False
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Task[None] | None = None
        self._served = False  # aiohttp's protocol has the connection (after TLS, if any)

    def connection_made(self, transport: Any) -> None:
        connections = self._connections
        self._transport = transport
        if len(connections.open) >= connections.limit:
            self._refused = True
            connections.refused += 1
            if connections.tls is not None:
                transport.abort()  # no HTTP answer before TLS, and no TLS state for a refused one
            else:
                transport.write(REFUSAL)
                transport.close()
            return
        connections.open[transport] = self
        if connections.tls is None:
            self._serve(transport)
            return
        if len(connections.handshaking) >= connections.max_handshakes:
            oldest, _ = connections.handshaking.popitem(last=False)
            connections.tls_evicted += 1
            oldest.abort()
        connections.handshaking[transport] = self
        self._handshake = asyncio.get_running_loop().create_task(self._start_tls(transport, connections.tls))

    async def _start_tls(self, raw: Any, context: ssl.SSLContext) -> None:
        """TLS on ``raw`` within the handshake deadline, then hand the connection to aiohttp."""
        connections = self._connections
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(
                raw, self, context, server_side=True, ssl_handshake_timeout=connections.header_timeout
            )
        except (Exception, asyncio.CancelledError):  # a bad or stalled client, or the listener stopping
            if connections.handshaking.pop(raw, None) is not None:  # not when ended as the oldest
                connections.tls_failed += 1
            connections.open.pop(raw, None)
            raw.abort()
            return
        connections.handshaking.pop(raw, None)
        connections.open.pop(raw, None)
        if secure is None or secure.is_closing():
            return
        self._transport = secure
        connections.open[secure] = self
        self._serve(secure)

    def _serve(self, transport: Any) -> None:
        self._served = True
        self._inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._busy and self._timer is None:
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._served else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            self._connections.open.pop(self._transport, None)
        if self._served:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if not self._refused:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if not self._refused:
            self._inner.resume_writing()

    def busy(self) -> None:
        """A request is being handled: no header deadline until it is answered."""
        self._busy = True
        self._disarm()

    def idle(self) -> None:
        """The request is answered: the next one's deadline starts with its first byte."""
        self._busy = False

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._connections.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if not self._busy and self._transport is not None:
            self._connections.timed_out += 1
            self._transport.close()
