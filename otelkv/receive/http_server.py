"""OTLP/HTTP ``POST /v1/logs`` (protobuf and JSON, gzip), ``/healthz``, ``/readyz``, ``/metrics``.

aiohttp's server (llhttp parser, asyncio) in a thread of its own: a connection costs a socket
and a small buffer, not a thread, so slow clients hold no worker; bodies are read as they come,
each chunk charged to the in-flight memory cap (:class:`otelkv.pipeline.InflightBytes`), within
``read_timeout`` for the whole request; decoding, enrichment and forwarding run in a small thread
pool. Answers follow the OTLP/HTTP specification: 200 with an ``ExportLogsServiceResponse`` in
the request's encoding; failures carry a ``google.rpc.Status`` body; 503 with ``Retry-After`` for
what the collector retries. Why aiohttp: docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

# aiohttp's low-level server (the classes ``aiohttp.web`` exports as Server, BaseRequest, Response)
# from the modules that define it: ``aiohttp.web`` would also import the web framework otelkv does
# not use (applications, routing, runners, file responses, WebSockets): ~1 MiB of an idle sidecar.
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import Response, StreamResponse
from aiohttp.web_server import Server
from google.protobuf import json_format
from google.rpc import status_pb2

from otelkv.config import ReceiveHTTPConfig, split_host_port
from otelkv.errors import BadRequest, RequestTimeout, Retryable, Unauthenticated, Unsupported, http_answer
from otelkv.forward import Delivery
from otelkv.otlp.decode import decode_protobuf
from otelkv.pipeline import Pipeline, Reservation
from otelkv.receive.body import JSON, PROTOBUF, decode_json, gunzip
from otelkv.receive.charge import decode_charge
from otelkv.receive.connections import ConnectionGuard, Connections
from otelkv.receive.listen import bind_family
from otelkv.receive.pool import run_charged
from otelkv.receive.response import response_for
from otelkv.receive.security import ServerTLS
from otelkv.telemetry.metrics import Telemetry

log = logging.getLogger(__name__)


class _Debug(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp logs a malformed request at error level: a client's fault, so debug here."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """What the HTTP listener serves and how: limits, TLS, which endpoints, authentication."""

    limits: ReceiveHTTPConfig
    max_message_bytes: int
    #: POST /v1/logs here (False on the admin listener).
    otlp: bool = True
    #: /healthz, /readyz and /metrics here.
    admin: bool = True
    #: TLS (and mTLS) with certificates re-read when their files change; None: plain HTTP.
    tls: ServerTLS | None = None
    #: Answers None when a request may pass, else why not (401); None: no authentication.
    authorize: Callable[[str | None], str | None] | None = None
    #: /metrics asks for the token too.
    protect_metrics: bool = True


class HttpReceiver:
    """The HTTP server: OTLP/HTTP logs and/or health, readiness and metrics."""

    def __init__(self, pipeline: Pipeline, telemetry: Telemetry, address: str, options: HttpOptions) -> None:
        self.pipeline = pipeline
        self.telemetry = telemetry
        self.options = options
        limits = options.limits
        self._body_limit = limits.max_request_body_size or options.max_message_bytes
        self._body_key = "receive.http.max_request_body_size" if limits.max_request_body_size else "max_message_bytes"
        host, port = split_host_port(address)
        # Bound here, so that a taken port fails start-up (fail fast) and the port is known.
        self._socket = socket.create_server((host, port), family=bind_family(host), backlog=limits.backlog)
        self.port: int = self._socket.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="otelkv-http")
        tls = options.tls
        # TLS is started per connection by the guard, after counting it (receive/connections.py)
        self.connections = Connections(
            limits.max_connections, limits.read_header_timeout, tls=tls.context if tls else None
        )
        self._web = Server(
            self._handle,
            loop=self._loop,
            keepalive_timeout=limits.idle_timeout,
            auto_decompress=False,  # gzip is inflated here, within the limits and the in-flight cap
            access_log=None,
            logger=_Debug(log, {}),
            lingering_time=min(5.0, limits.read_timeout),  # an unread body is drained this long, then closed
        )
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="otelkv-http", daemon=True)

    def start(self) -> None:
        """Serve from a background thread."""
        self._thread.start()
        self._server = self._call(self._serve(), 10)

    async def _serve(self) -> asyncio.AbstractServer:
        def protocol() -> ConnectionGuard:
            return ConnectionGuard(self.connections, self._web())

        tls = self.options.tls
        if tls is not None:
            self._loop.call_later(1.0, self._refresh_tls, tls)
        return await self._loop.create_server(protocol, sock=self._socket)

    def _refresh_tls(self, tls: ServerTLS) -> None:
        """Every second: load changed certificate files (security.py says how)."""
        tls.refresh()
        self._loop.call_later(1.0, self._refresh_tls, tls)

    def _call(self, coroutine: Awaitable[Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]

    def stop(self, grace: float) -> None:
        """Stop accepting; let requests in progress finish within ``grace`` seconds; close the rest.

        Returns within about ``grace`` seconds whatever the clients do. Safe twice.
        """
        self.pipeline.health.draining = True
        if self._thread.is_alive():
            try:
                self._call(self._shutdown(grace), grace + 2)
            except (TimeoutError, RuntimeError):
                log.warning("http: connections still open after %.1fs, closed", grace)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(2)
        else:
            self._socket.close()
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self, grace: float) -> None:
        if self._server is not None:
            self._server.close()
        self._web.pre_shutdown()  # idle keep-alive connections end now, busy ones after their answer
        await self._web.shutdown(grace)
        self.connections.close_all()

    # -- requests ---------------------------------------------------------------------------

    async def _handle(self, request: BaseRequest) -> StreamResponse:
        guard = self.connections.busy(request.transport)
        try:
            response = await self._route(request)
        except Exception as error:  # a bug: aiohttp would answer 500 and log it at debug only
            log.error("%s %s failed: %r", request.method, request.path, error)
            response = _text(503, b"internal error\n", {"Retry-After": "1"})
        finally:
            if guard is not None:
                guard.idle()
        if self.pipeline.health.draining:
            response.force_close()
        return response

    async def _route(self, request: BaseRequest) -> StreamResponse:
        path, method = request.path, request.method
        opts = self.options
        if opts.admin and method in ("GET", "HEAD") and path in ("/healthz", "/readyz", "/metrics"):
            if path == "/healthz":
                return _text(200, b"ok\n")
            if path == "/readyz":
                ready, why = self.pipeline.health.ready()
                return _text(200 if ready else 503, f"{why}\n".encode())
            refused = self._refused(request) if opts.protect_metrics else None
            if refused is not None:
                return _text(401, f"{refused}\n".encode(), dict(http_answer(Unauthenticated(refused)).headers))
            body = await asyncio.get_running_loop().run_in_executor(self._pool, self.telemetry.prometheus_text)
            return _text(200, body, content_type="text/plain; version=0.0.4")
        if opts.otlp and path == "/v1/logs" and method == "POST":
            return await self._export(request)
        if opts.otlp and method == "POST":
            return _text(404, b"not found: OTLP logs go to /v1/logs\n")
        return _text(404, b"not found\n")

    def _refused(self, request: BaseRequest) -> str | None:
        authorize = self.options.authorize
        return authorize(request.headers.get("Authorization")) if authorize is not None else None

    async def _export(self, request: BaseRequest) -> StreamResponse:
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        encoding = JSON if content_type == JSON else PROTOBUF
        started = time.monotonic()
        # other expectations are ignored, as RFC 9110 section 10.1.1 allows
        expect = (request.headers.get("Expect") or "").strip().lower() == "100-continue"
        try:
            refused = self._refused(request)
            if refused is not None:
                return self._fail(Unauthenticated(refused), encoding)
            if content_type not in (PROTOBUF, JSON):
                raise Unsupported(f"Content-Type must be {PROTOBUF} or {JSON}, got {content_type or 'none'!r}")
            coding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
            if coding not in ("gzip", "identity"):
                raise Unsupported(f"Content-Encoding must be gzip or identity, got {coding!r}")
            length = request.content_length
            if length is not None and length > self._body_limit:
                raise BadRequest(
                    f"request of {length} bytes exceeds {self._body_key} {self._body_limit}", too_large=True
                )
            if expect:
                await _continue(request)
            reservation = Reservation(self.pipeline.inflight)
            try:
                remaining = self.options.limits.read_timeout - (time.monotonic() - started)
                try:
                    async with asyncio.timeout(remaining):
                        body = await self._read(request, reservation)
                except TimeoutError as error:
                    raise RequestTimeout(
                        f"request not received within read_timeout {self.options.limits.read_timeout}s"
                    ) from error
                delivery = await run_charged(
                    self._pool, reservation, self._process, body, content_type, coding, reservation
                )
            finally:
                reservation.release()  # nothing once the worker has it: given back when it is done
        except Exception as error:
            # a body never asked for (Expect) is read and dropped if it comes, within lingering_time
            return self._fail(error, encoding)
        return _message(200, response_for(delivery), encoding)

    async def _read(self, request: BaseRequest, reservation: Reservation) -> bytes:
        """The body as it arrives, each chunk charged to the in-flight cap before the next."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > self._body_limit:
                raise BadRequest(f"request body exceeds {self._body_key} {self._body_limit}", too_large=True)
            reservation.add(len(chunk))
            chunks.append(chunk)
        if len(chunks) == 1:
            return chunks[0]
        reservation.add(size)  # the joined copy
        return b"".join(chunks)

    def _process(self, body: bytes, content_type: str, coding: str, reservation: Reservation) -> Delivery:
        """Inflate, decode, enrich and forward (in the thread pool): the part that blocks."""
        limit = self.options.max_message_bytes
        if coding == "gzip":
            body = gunzip(body, limit, reservation)
        if len(body) > limit:
            raise BadRequest(f"request of {len(body)} bytes exceeds max_message_bytes {limit}", too_large=True)
        if content_type == JSON:
            request = decode_json(body, reservation)
            del body
            payload = request.SerializeToString()  # the compiled core enriches bytes: no copy per record
            reservation.add(len(payload))
            return self.pipeline.export(request, payload=payload, charge=reservation)
        reservation.add(decode_charge(body))
        return self.pipeline.export(decode_protobuf(body), payload=body, charge=reservation)

    def _fail(self, error: BaseException, encoding: str) -> StreamResponse:
        if isinstance(error, BadRequest) and not isinstance(error, Unauthenticated):
            self.pipeline.invalid(error)
        elif not isinstance(error, BadRequest):
            log.log(logging.DEBUG if isinstance(error, Retryable) else logging.ERROR, "export failed: %r", error)
        answer = http_answer(error)
        status = status_pb2.Status(code=answer.code.value[0], message=answer.message)
        response = _message(answer.status, status, encoding, dict(answer.headers))
        if answer.closes:  # the body is not all read: end the connection after the answer
            response.force_close()
        return response


async def _continue(request: BaseRequest) -> None:
    """Ask for the body of a request that waits for it (``Expect: 100-continue``); called once its
    headers passed the limits and authentication, so a refused client never sends its body.
    aiohttp answers it only in its web framework's router, which otelkv does not use; without
    this, clients (curl, libcurl, .NET) waited a second per request before sending anyway."""
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is no part of the response's size


def _text(
    status: int, body: bytes, headers: dict[str, str] | None = None, *, content_type: str = "text/plain"
) -> Response:
    return Response(status=status, body=body, headers={"Content-Type": content_type, **(headers or {})})


def _message(status: int, message: Any, encoding: str, headers: dict[str, str] | None = None) -> Response:
    body = json_format.MessageToJson(message, indent=None).encode() if encoding == JSON else message.SerializeToString()
    return Response(status=status, body=body, headers={"Content-Type": encoding, **(headers or {})})
