"""The HTTPS listener counts a connection before TLS starts (issue 18 item 10): beyond
``receive.http.max_connections`` it is aborted with no TLS state, at most ``MAX_HANDSHAKES``
handshakes are in progress (a new one ends the oldest), and certificates still reload."""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from otelkv.receive.connections import MAX_HANDSHAKES, Connections, closed_connections
from otelkv.server import Service
from tests.hostile.attacks import client_hello
from tests.loki_sink import LokiSink
from tests.reliability import wait_until
from tests.test_serve_security import Pki, https, pki, stopping, tls_service

__all__ = ["pki", "stopping"]  # fixtures


@contextmanager
def stalled(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that send half a ClientHello and wait."""
    half = client_hello()[:100]
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5)) for _ in range(count)]
        for s in socks:
            s.sendall(half)
        yield socks


def closed(sock: socket.socket) -> bool:
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1024) == b""
    except OSError:
        return True


def _connections(svc: Service) -> Connections:
    assert svc._http is not None  # http_listen is set
    return svc._http.connections


def _closed(svc: Service) -> dict[str, int]:
    return closed_connections([_connections(svc)])


def test_connections_beyond_the_limit_get_no_tls_state(sink: LokiSink, pki: Pki, stopping: list[Service]) -> None:
    svc = tls_service(sink, pki, overrides={"receive.http.max_connections": 4})
    stopping.append(svc)
    with stalled(svc.http_port, 10) as socks:
        # before: asyncio's TLS server counted a connection only once its handshake was done
        assert wait_until(lambda: sum(map(closed, socks)) >= 6, 5)
        assert _closed(svc)["limit"] == 6
        assert len(_connections(svc).handshaking) == 4
    assert wait_until(lambda: not _connections(svc).open, 5)  # counted out when they leave


def test_a_new_handshake_beyond_the_cap_ends_the_oldest(sink: LokiSink, pki: Pki, stopping: list[Service]) -> None:
    svc = tls_service(sink, pki)
    stopping.append(svc)
    with stalled(svc.http_port, MAX_HANDSHAKES + 10) as socks:
        assert wait_until(lambda: sum(map(closed, socks[:10])) == 10, 5)  # the oldest ten
        assert _closed(svc)["handshake_limit"] == 10
        assert not any(closed(s) for s in socks[-10:])
        assert https(svc, pki)[0] == 200  # a real handshake takes milliseconds: it gets through
        pki.issue_server("renewed")  # and certificates still reload into the live context
        assert wait_until(lambda: https(svc, pki)[2] == "renewed", 10)


def test_a_stalled_handshake_ends_at_the_header_deadline(sink: LokiSink, pki: Pki, stopping: list[Service]) -> None:
    svc = tls_service(sink, pki, overrides={"receive.http.read_header_timeout": 0.5})
    stopping.append(svc)
    with stalled(svc.http_port, 3) as socks:
        assert wait_until(lambda: all(map(closed, socks)), 10)
        assert wait_until(lambda: _closed(svc)["tls_handshake"] == 3, 5)
    assert not _connections(svc).open and not _connections(svc).handshaking


def test_a_renegotiation_is_refused(pki: Pki) -> None:
    from otelkv.config import ReceiveTLSConfig  # noqa: PLC0415
    from otelkv.receive.security import ServerTLS  # noqa: PLC0415

    tls = ServerTLS(ReceiveTLSConfig(cert_file=str(pki.cert_file), key_file=str(pki.key_file)))
    assert tls.context.options & ssl.OP_NO_RENEGOTIATION
