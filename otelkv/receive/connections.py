"""The HTTP listener's open connections: at most ``max_connections``, headers within a deadline.

aiohttp has neither limit, so each connection's protocol is wrapped in a :class:`ConnectionGuard`
that counts it (beyond the limit: a 503 and close, before anything is read) and closes it when
a request's headers do not arrive within ``read_header_timeout`` of its first byte (or of the
connection). Runs in the event loop's thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

#: The answer to a connection beyond the limit: retryable, and nothing read.
_BUSY: Final = b"otelkv is busy: too many connections\n"
REFUSAL: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


class Connections:
    """The open connections of one listener, by transport."""

    def __init__(self, limit: int, header_timeout: float) -> None:
        self.limit = limit
        self.header_timeout = header_timeout
        self.open: dict[Any, ConnectionGuard] = {}
        #: Connections refused at the limit, and closed for slow headers (tests; metrics: closed_connections).
        self.refused = 0
        self.timed_out = 0

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
    """The connections ``listeners`` closed so far, by reason (metrics): ``limit``, ``header_timeout``."""
    return {"limit": sum(c.refused for c in listeners), "header_timeout": sum(c.timed_out for c in listeners)}


class ConnectionGuard(asyncio.Protocol):
    """Wraps the aiohttp protocol of one connection (see the module's docstring)."""

    def __init__(self, connections: Connections, inner: Any) -> None:
        self._connections = connections
        self._inner = inner
        self._transport: Any = None
        self._refused = False
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        if len(self._connections.open) >= self._connections.limit:
            self._refused = True
            self._connections.refused += 1
            transport.write(REFUSAL)
            transport.close()
            return
        self._connections.open[transport] = self
        self._inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._busy and self._timer is None:
            self._arm()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._refused else self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            self._connections.open.pop(self._transport, None)
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
