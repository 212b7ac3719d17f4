"""A Loki query double for tests: ``GET /loki/api/v1/query_range`` on a real loopback HTTP server,
answering from what :class:`tests.loki_sink.LokiSink` stored (what otelkv's forwarder wrote).

It follows ``shared/FACTS.md`` §3b (Loki 3.x) exactly where it speaks:

- ``query``, ``start``, ``end``, ``limit``, ``direction``; ``start``/``end`` as nanosecond epochs or
  RFC 3339; ``start`` inclusive, ``end`` exclusive; defaults: the last hour, ``limit`` 100,
  ``direction=backward``. The entries answered are the first ``limit`` in that direction over all
  streams; there is no cursor.
- With ``auth_enabled`` a request without ``X-Scope-OrgID`` is 401 ``no org id``; the header picks
  the tenant (entries stored for another tenant are not seen).
- A ``limit`` above ``max_entries_limit_per_query`` (default 5000) is a 400; so is a range longer
  than ``max_query_length`` (default 30d1h). The wording is Loki's (``pkg/util/validation``,
  ``pkg/querier/queryrange/limits.go``), not stated in FACTS.
- The answer: ``{"status":"success","data":{"resultType":"streams","result":[{"stream":{labels},
  "values":[["<ns>","<line>"], …]}],"stats":{…}}}``. Without the request header
  ``X-Loki-Response-Encoding-Flags: categorize-labels`` structured metadata is merged into each
  stream's label set (each distinct combination its own stream); with it, each value gets a third
  element ``{"structuredMetadata":{…},"parsed":{}}`` and ``data.encodingFlags`` lists the flag.

LogQL: only what otelkv's queries use — a stream selector of ``=``, ``!=``, ``=~``, ``!~``
matchers (regular expressions fully anchored, as Loki's), then ``| name op "value"`` label filters
over labels and structured metadata (a missing name is the empty string), and ``|= "text"`` /
``!= "text"`` line filters. Anything else is a 400 ``parse error``. Scripted answers
(``script``: status, body) come before normal service, as with the sink.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loki_sink import Entry

_STRING = r'"(?:[^"\\]|\\.)*"|`[^`]*`'
_MATCHER = re.compile(rf"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*({_STRING})\s*")
_STAGE = re.compile(rf"\s*(?:\|\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*({_STRING})|(\|=|!=)\s*({_STRING}))\s*")
HOUR_NS = 3600 * 10**9
#: Loki's defaults: max_entries_limit_per_query, max_query_length (30d1h).
MAX_ENTRIES = 5000
MAX_QUERY_LENGTH_NS = (30 * 24 + 1) * HOUR_NS


class ParseError(ValueError):
    """Not LogQL this double knows."""


def _unquote(text: str) -> str:
    return text[1:-1] if text.startswith("`") else str(json.loads(text))


def _test(op: str, have: str, want: str) -> bool:
    if op == "=":
        return have == want
    if op == "!=":
        return have != want
    found = re.fullmatch(want, have) is not None
    return found if op == "=~" else not found


def parse(query: str) -> Callable[[Entry], bool]:
    """The filter a LogQL log query means (the subset above); ParseError otherwise."""
    query = query.strip()
    if not query.startswith("{") or "}" not in query:
        raise ParseError(f"parse error : syntax error: unexpected {query[:1]!r}")
    inside, _, rest = query[1:].partition("}")
    selector = []
    for part in filter(str.strip, inside.split(",")):
        found = _MATCHER.fullmatch(part)
        if found is None:
            raise ParseError(f"parse error : bad matcher {part.strip()!r}")
        selector.append((found.group(1), found.group(2), _unquote(found.group(3))))
    if not any(op in ("=", "=~") and not re.fullmatch(v if op == "=~" else re.escape(v), "") for _, op, v in selector):
        raise ParseError(
            "parse error : queries require at least one regexp or equality matcher that does not have an "
            "empty-compatible value"
        )
    stages: list[tuple[str, str, str]] = []
    position = 0
    while position < len(rest):
        found = _STAGE.match(rest, position)
        if found is None or found.end() == position:
            raise ParseError(f"parse error : syntax error near {rest[position : position + 20]!r}")
        if found.group(1):
            stages.append((found.group(1), found.group(2), _unquote(found.group(3))))
        else:
            stages.append(("__line__", found.group(4), _unquote(found.group(5))))
        position = found.end()

    def keep(entry: Entry) -> bool:
        if not all(_test(op, entry.labels.get(name, ""), value) for name, op, value in selector):
            return False
        for name, op, value in stages:
            if name == "__line__":
                if (value in entry.line) != (op == "|="):
                    return False
            elif not _test(op, {**entry.labels, **entry.metadata}.get(name, ""), value):
                return False
        return True

    return keep


def _time_ns(text: str, name: str) -> int:
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp') from None
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def _go_duration(ns: int) -> str:
    seconds = ns // 10**9
    return f"{seconds // 3600}h{seconds % 3600 // 60}m{seconds % 60}s"


class LokiQueryDouble:
    """Start with :meth:`start`; ``url`` is Loki's base URL (what ``--loki`` takes)."""

    def __init__(
        self,
        entries: Callable[[], list[Entry]],
        *,
        auth_enabled: bool = True,
        max_entries_limit_per_query: int = MAX_ENTRIES,
        max_query_length_ns: int = MAX_QUERY_LENGTH_NS,
        categorize_labels: bool = True,
    ) -> None:
        self.entries = entries
        self.auth_enabled = auth_enabled
        self.max_entries = max_entries_limit_per_query
        self.max_query_length_ns = max_query_length_ns
        #: False: a Loki that does not know the flag (before 3.0), merging metadata into labels.
        self.categorize_labels = categorize_labels
        self.requests: list[dict[str, Any]] = []  # each query's parameters and headers
        self.script: deque[tuple[int, bytes]] = deque()
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, answer = double.handle(self.path, dict(self.headers.items()))
                kind = "application/json" if status == 200 else "text/plain; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> LokiQueryDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        parts = urlsplit(path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append({"params": params, "headers": headers})
            scripted = self.script.popleft() if self.script else None
        if scripted is not None:
            return scripted
        if parts.path != "/loki/api/v1/query_range":
            return 404, b"404 page not found\n"
        tenant = headers.get("X-Scope-OrgID")
        if self.auth_enabled and not tenant:
            return 401, b"no org id\n"
        try:
            return 200, json.dumps(self._answer(params, tenant, headers)).encode()
        except ValueError as error:
            return 400, f"{error}\n".encode()

    def _answer(self, params: dict[str, str], tenant: str | None, headers: dict[str, str]) -> dict[str, Any]:
        keep = parse(params.get("query", ""))
        end = _time_ns(params["end"], "end") if "end" in params else time.time_ns()
        start = _time_ns(params["start"], "start") if "start" in params else end - HOUR_NS
        if end - start > self.max_query_length_ns:
            raise ValueError(
                f"the query time range exceeds the limit (query length: {_go_duration(end - start)}, "
                f"limit: {_go_duration(self.max_query_length_ns)})"
            )
        limit = int(params.get("limit", "100"))
        if limit > self.max_entries:
            raise ValueError(
                f"max entries limit per query exceeded, limit > max_entries_limit ({limit} > {self.max_entries})"
            )
        direction = params.get("direction", "backward")
        if direction not in ("forward", "backward"):
            raise ValueError(f'invalid parameter "direction": {direction}')
        found = [
            e
            for e in self.entries()
            if (not self.auth_enabled or e.tenant == tenant) and start <= e.time_ns < end and keep(e)
        ]
        found.sort(key=lambda e: e.time_ns, reverse=direction == "backward")
        found = found[:limit]
        flags = headers.get("X-Loki-Response-Encoding-Flags", "")
        categorize = self.categorize_labels and "categorize-labels" in flags
        streams: dict[str, dict[str, Any]] = {}
        for e in found:
            labels = e.labels if categorize else {**e.metadata, **e.labels}
            stream = streams.setdefault(json.dumps(labels, sort_keys=True), {"stream": labels, "values": []})
            value: list[Any] = [str(e.time_ns), e.line]
            if categorize:
                value.append({"structuredMetadata": e.metadata, "parsed": {}})
            stream["values"].append(value)
        data: dict[str, Any] = {"resultType": "streams", "result": list(streams.values()), "stats": {}}
        if categorize:
            data["encodingFlags"] = ["categorize-labels"]
        return {"status": "success", "data": data}
