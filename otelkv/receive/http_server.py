"""OTLP/HTTP ``POST /v1/logs`` (protobuf and JSON, gzip), ``/healthz``, ``/readyz``, ``/metrics``.

The standard library's threading HTTP/1.1 server: one thread a connection, keep-alive, idle
connections closed after :data:`IDLE_SECONDS` so that a drain ends. Answers follow the OTLP/HTTP
specification: 200 with an ``ExportLogsServiceResponse`` in the request's encoding; failures
carry a ``google.rpc.Status`` body; 503 with ``Retry-After`` for what the collector retries.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import socket
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)

from otelkv.config import split_host_port
from otelkv.errors import BadRequest, http_answer
from otelkv.pipeline import Pipeline
from otelkv.receive import response_for
from otelkv.telemetry import Telemetry

log = logging.getLogger(__name__)

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
IDLE_SECONDS: Final = 10.0


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes: a gzip bomb stops at the limit, not at the memory."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise BadRequest(f"body is not valid gzip: {error}") from error
    if len(out) > limit or inflater.unconsumed_tail:
        raise BadRequest(f"decompressed body exceeds max_message_bytes {limit}", too_large=True)
    return out


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes traceId/spanId in hex; protobuf's JSON mapping wants base64."""
    for resource in node.get("resourceLogs", []) if isinstance(node, dict) else []:
        for scope in resource.get("scopeLogs", []) if isinstance(resource, dict) else []:
            for record in scope.get("logRecords", []) if isinstance(scope, dict) else []:
                for key in ("traceId", "spanId"):
                    value = record.get(key) if isinstance(record, dict) else None
                    if isinstance(value, str) and value:
                        try:
                            record[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError as error:
                            raise BadRequest(f"logRecords.{key}: not hex: {value[:40]!r}") from error


def decode_json(body: bytes) -> ExportLogsServiceRequest:
    """An OTLP/JSON logs request; :class:`BadRequest` naming the problem otherwise."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"body is not JSON: {error}") from error
    _hex_ids_to_base64(data)
    try:
        return json_format.ParseDict(data, ExportLogsServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, binascii.Error) as error:
        raise BadRequest(f"not an OTLP/JSON ExportLogsServiceRequest: {error}") from error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, busy=False)

    def parse_request(self) -> bool:
        self.server.track(self.connection, busy=True)  # a request line arrived: not idle any more
        return super().parse_request()

    def handle_one_request(self) -> None:
        super().handle_one_request()
        self.server.track(self.connection, busy=False)

    def finish(self) -> None:
        super().finish()
        self.server.forget(self.connection)

    def do_GET(self) -> None:
        receiver = self.server.receiver
        if self.path == "/healthz":
            self._reply(200, b"ok\n", "text/plain")
        elif self.path == "/readyz":
            ready, why = receiver.pipeline.health.ready()
            self._reply(200 if ready else 503, f"{why}\n".encode(), "text/plain")
        elif self.path == "/metrics":
            self._reply(200, receiver.telemetry.prometheus_text(), "text/plain; version=0.0.4")
        else:
            self._reply(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path != "/v1/logs":
            self._reply(404, b"not found: OTLP logs go to /v1/logs\n", "text/plain")
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        encoding = PROTOBUF if content_type != JSON else JSON
        pipeline = self.server.receiver.pipeline
        try:
            length = self.headers.get("Content-Length") or ""
            with pipeline.inflight.admit(int(length) if length.isdigit() else 0):  # a bad one: 400 below
                request = self._read_request(content_type)
                delivery = pipeline.export(request)
        except Exception as error:
            self._fail(error, encoding)
            return
        answer = response_for(delivery)
        self._reply(200, *self._encode(answer, encoding))

    def _read_request(self, content_type: str) -> ExportLogsServiceRequest:
        limit = self.server.receiver.pipeline.settings.max_message_bytes
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise BadRequest("Content-Length is required")
        if int(length) > limit:
            self.close_connection = True  # the body is left unread
            raise BadRequest(f"request of {length} bytes exceeds max_message_bytes {limit}", too_large=True)
        body = self.rfile.read(int(length))
        if content_type not in (PROTOBUF, JSON):
            raise _Unsupported(f"Content-Type must be {PROTOBUF} or {JSON}, got {content_type or 'none'!r}")
        coding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if coding == "gzip":
            body = _gunzip(body, limit)
        elif coding != "identity":
            raise _Unsupported(f"Content-Encoding must be gzip or identity, got {coding!r}")
        if content_type == JSON:
            return decode_json(body)
        return self.server.receiver.pipeline.decode(body)

    def _fail(self, error: BaseException, encoding: str) -> None:
        if isinstance(error, BadRequest):
            self.server.receiver.pipeline.invalid()
        if isinstance(error, _Unsupported):
            status, message, retry = 415, str(error), None
        else:
            answer = http_answer(error)
            status, message, retry = answer.status, answer.message, answer.retry_after
            if not isinstance(error, BadRequest):
                log.debug("export failed: %s", error)
        body = status_pb2.Status(code=_RPC_CODES.get(status, 14), message=message)
        headers = {"Retry-After": str(retry)} if retry is not None else {}
        self._reply(status, *self._encode(body, encoding), headers)

    @staticmethod
    def _encode(message: Any, encoding: str) -> tuple[bytes, str]:
        if encoding == JSON:
            return json_format.MessageToJson(message, indent=None).encode(), JSON
        return message.SerializeToString(), PROTOBUF

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        if self.server.receiver.pipeline.health.draining:
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


# google.rpc.Code for the Status body: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE.
_RPC_CODES: Final = {400: 3, 413: 8, 415: 3, 503: 14}


class _Unsupported(BadRequest):
    """An unsupported Content-Type or Content-Encoding (415)."""


class _Server(ThreadingHTTPServer):
    """Knows its connections, so that a drain closes the idle keep-alive ones at once."""

    daemon_threads = False
    block_on_close = True
    receiver: HttpReceiver

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: dict[socket.socket, bool] = {}
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, *, busy: bool) -> None:
        with self._connections_lock:
            self._connections[connection] = busy

    def forget(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.pop(connection, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (e.g. the client went away): logged, never fatal."""
        log.debug("http connection from %s failed", client_address, exc_info=True)

    def close_idle(self) -> None:
        """End connections waiting for a next request; busy ones close after their answer."""
        with self._connections_lock:
            idle = [c for c, busy in self._connections.items() if not busy]
        for connection in idle:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)


class HttpReceiver:
    """The HTTP server: OTLP/HTTP logs, health, readiness and metrics."""

    def __init__(self, pipeline: Pipeline, telemetry: Telemetry, address: str) -> None:
        self.pipeline = pipeline
        self.telemetry = telemetry
        host, port = split_host_port(address)
        self._server = _Server((host, port), _Handler)
        self._server.receiver = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="otelkv-http", daemon=True
        )

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self, grace: float) -> None:
        """Stop accepting; wait up to ``grace`` seconds for open connections to finish."""
        self.pipeline.health.draining = True
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.close_idle()
        closer = threading.Thread(target=self._server.server_close, name="otelkv-http-close", daemon=True)
        closer.start()
        closer.join(grace)
