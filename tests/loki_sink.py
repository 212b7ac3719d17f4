"""A Loki-like OTLP/HTTP sink for tests: a real HTTP server on a loopback port.

No Loki binary can run here, so this double follows ``shared/FACTS.md`` §3 (Loki 3.6,
``POST /otlp/v1/logs``) exactly where it speaks:

- Content-Type must be exactly ``application/x-protobuf`` or ``application/json`` (even a
  ``; charset=utf-8`` suffix is 400); Content-Encoding gzip or none (zstd and lz4, which Loki
  also takes, are not implemented here and answered 400); a malformed body is 400.
- Success is 204 with an empty body.
- With ``auth_enabled`` (the Helm chart's default) a request without ``X-Scope-OrgID`` is 401
  ``no org id``.
- Index labels come only from resource attributes in Loki's default list; names map every
  character outside ``[A-Za-z0-9]`` to ``_`` and a leading digit gets ``key_``; a missing
  ``service.name`` becomes ``service_name="unknown_service"``. Everything else — other resource
  attributes, record attributes, ``severity_text``, ``severity_number``, ``scope_name`` — is
  structured metadata. The line is the string body (a map body as compact JSON); the time is
  ``time_unix_nano``, else the observed time, else the receive time.
- 400 when an entry fails validation (here: entries older than ``reject_older_than``), **after
  storing the valid entries** of that request. The message ends with ``total ignored: N out of
  M`` (Loki's wording, not stated in FACTS).
- Through the chart's gateway, bodies over ``max_body_bytes`` (4 MiB) get an HTML 413.

Faults for tests: ``script`` answers the next requests with given statuses (and headers) before
normal service resumes (status 0: reset the connection; ``cut``: store, then close half-way
through the answer); ``delay`` sleeps before answering (and
still stores: a client that timed out may have been served, as with a real slow Loki);
:meth:`stop` takes the port down; a new sink on the same ``port`` brings it back.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import ssl
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.otlp.attributes import to_dict, value_of
from otelkv.otlp.decode import decode_protobuf

DEFAULT_LABELS = (
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
)


def loki_name(name: str) -> str:
    """An OTLP attribute name as Loki stores it."""
    name = re.sub(r"[^A-Za-z0-9]", "_", name)
    return f"key_{name}" if name[:1].isdigit() else name


@dataclass(frozen=True)
class Entry:
    """One stored log line, as a LogQL user would see it."""

    tenant: str | None
    labels: dict[str, str]
    metadata: dict[str, str]
    line: str
    time_ns: int


@dataclass
class Scripted:
    """One scripted answer: a status, headers and a body; status None: the normal answer, after
    ``delay`` seconds (a slow Loki that still stores)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    #: Answer normally (storing), but close the connection half-way through the status line:
    #: the client never learns that the request was stored.
    cut: bool = False


class LokiSink:
    """Start with :meth:`start`; ``url`` is the OTLP base (``…/otlp``) otelkv forwards to."""

    def __init__(
        self,
        *,
        auth_enabled: bool = True,
        max_body_bytes: int = 4 * 1024 * 1024,
        tls: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        self.auth_enabled = auth_enabled
        self.max_body_bytes = max_body_bytes
        self.entries: list[Entry] = []
        self.requests: list[dict[str, str]] = []  # the headers of every request received
        self.script: deque[Scripted] = deque()
        self.delay = 0.0
        self.reject_older_than: int | None = None  # time_ns below which entries fail validation
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, answer = sink.handle(self.path, dict(self.headers.items()), body)
                if status < 0:  # a scripted cut: part of the answer, then the connection closes
                    self.wfile.write(f"HTTP/1.1 {-status} ".encode())
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if status == 0:  # a scripted connection reset: no answer at all
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        connections: set[socket.socket] = set()

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                connections.add(request)
                super().process_request(request, client_address)

        self._connections = connections
        self._server = Server(("127.0.0.1", port), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/otlp"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> LokiSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take the port down, and every open connection with it (a crashed Loki)."""
        self._server.shutdown()
        self._server.server_close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()

    # -- Loki's behaviour -----------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(headers)
            scripted = self.script.popleft() if self.script else None
        if self.delay:
            time.sleep(self.delay)
        if scripted is not None and scripted.delay:
            time.sleep(scripted.delay)
        if scripted is not None and scripted.status is not None:
            return scripted.status, scripted.headers, scripted.body
        if scripted is not None and scripted.cut:
            status, headers, answer = self._answer(path, headers, body)
            return -status, headers, answer
        return self._answer(path, headers, body)

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        text = {"Content-Type": "text/plain; charset=utf-8"}
        if path != "/otlp/v1/logs":
            return 404, text, b"404 page not found\n"
        if len(body) > self.max_body_bytes:
            return (
                413,
                {"Content-Type": "text/html"},
                b"<html><body><h1>413 Request Entity Too Large</h1></body></html>",
            )
        tenant = headers.get("X-Scope-OrgID")
        if self.auth_enabled and not tenant:
            return 401, text, b"no org id\n"
        content_type = headers.get("Content-Type", "")
        if content_type not in ("application/x-protobuf", "application/json"):
            return 400, text, f"unsupported content type: {content_type}\n".encode()
        encoding = headers.get("Content-Encoding", "")
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding not in ("", "identity"):
                return 400, text, f"unsupported content encoding: {encoding}\n".encode()
            if content_type == "application/json":
                request = json_format.Parse(body, ExportLogsServiceRequest())
            else:  # Loki decodes with Go's protobuf (10,000 levels); upb alone stops at 100
                request = decode_protobuf(body)
        except Exception as error:
            return 400, text, f"failed to parse request: {error}\n".encode()
        return self._store(tenant, request)

    def _store(self, tenant: str | None, request: ExportLogsServiceRequest) -> tuple[int, dict[str, str], bytes]:
        now = time.time_ns()
        stored, ignored, errors = [], 0, []
        for resource_logs in request.resource_logs:
            resource = {k: str(v) for k, v in to_dict(resource_logs.resource.attributes).items()}
            labels = {loki_name(k): v for k, v in resource.items() if k in DEFAULT_LABELS}
            labels.setdefault("service_name", "unknown_service")
            resource_meta = {loki_name(k): v for k, v in resource.items() if k not in DEFAULT_LABELS}
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    body = value_of(record.body)
                    line = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
                    time_ns = record.time_unix_nano or record.observed_time_unix_nano or now
                    if self.reject_older_than is not None and time_ns < self.reject_older_than:
                        ignored += 1
                        errors.append(f"entry for stream '{labels}' has timestamp too old: {time_ns}")
                        continue
                    meta = dict(resource_meta)
                    meta.update({loki_name(k): _text(v) for k, v in to_dict(record.attributes).items()})
                    if record.severity_text:
                        meta["severity_text"] = record.severity_text
                    meta["severity_number"] = str(record.severity_number)
                    if scope_logs.scope.name:
                        meta["scope_name"] = scope_logs.scope.name
                    stored.append(Entry(tenant, labels, meta, line, time_ns))
        with self._lock:
            self.entries.extend(stored)
        if ignored:
            total = ignored + len(stored)
            message = "\n".join(errors[:10]) + f"\ntotal ignored: {ignored} out of {total}\n"
            return 400, {"Content-Type": "text/plain; charset=utf-8"}, message.encode()
        return 204, {}, b""

    # -- what a LogQL user sees -----------------------------------------------------------------

    def stored(self) -> list[Entry]:
        """Every entry stored so far, in arrival order (a copy: the query double reads it)."""
        with self._lock:
            return list(self.entries)

    def select(self, **labels: str) -> list[Entry]:
        """Entries whose labels include ``labels`` (``{service_name="…", …}``)."""
        with self._lock:
            return [e for e in self.entries if all(e.labels.get(k) == v for k, v in labels.items())]


def _text(value: Any) -> str:
    """An attribute value as Loki's pcommon ``AsString`` writes it (Go's shortest float form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
