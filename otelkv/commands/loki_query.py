"""Read log entries from Loki's query API (``GET /loki/api/v1/query_range``), every page of them.

Loki 3.x (``../shared/FACTS.md`` §3b): ``start`` inclusive, ``end`` exclusive (nanosecond
epochs here); a ``limit`` above ``max_entries_limit_per_query`` (default 5000) is a 400; there is
no cursor, so this pages forward as ``logcli`` does with its batch size: the next query starts at
the last timestamp received, and the entries at that very timestamp already received are left
out the second time. With the request header ``X-Loki-Response-Encoding-Flags:
categorize-labels`` each value carries its structured metadata apart from the stream's labels; a
Loki that does not know the flag merges them into the stream's labels. Either way an entry here
holds one mapping of every name to its value.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Final
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from otelkv.commands.loki_answer import (
    CATEGORIZE,
    MAX_ENTRY_LABELS,
    BadTimestamp,
    LokiEntry,
    TooManyLabels,
    read_answer,
)
from otelkv.config.forward import TENANT, TENANT_RULE
from otelkv.config.notation import MissingVariable, expand
from otelkv.config.secrets import read_secret
from otelkv.errors import ConfigError, UserError
from otelkv.forward.http import failure_of, shown_url

__all__ = ["ENCODING_FLAGS", "LokiEntry", "LokiError", "LokiQuery", "Progress", "credentials"]

QUERY_RANGE: Final = "/loki/api/v1/query_range"
ENCODING_FLAGS: Final = "X-Loki-Response-Encoding-Flags"
#: The largest answer read for one query; a larger one is refused before it fills memory
#: (a full page of 5000 entries of KubeVirt events is a few MiB).
MAX_ANSWER_BYTES: Final = 64 * 2**20
#: JSON values one answer may hold, counted before parsing as its ``[``, ``{`` and ``,`` bytes (an
#: upper bound), so that an answer of tiny ones (``[[],[],…]``, ``{"a":0,"b":0,…}``) cannot take
#: gigabytes once decoded. A full page of 5000 entries with ~40 labels each counts ~200,000.
MAX_ANSWER_VALUES: Final = 2_000_000
#: The default of ``--max-entries``: entries all the pages of one run may hold.
MAX_ENTRIES: Final = 200_000


class LokiError(UserError, RuntimeError):
    """Loki could not be reached, refused the query, or answered something else than a result."""


def credentials(
    *,
    tenant: str | None = None,
    username: str | None = None,
    password_file: str | None = None,
    password_env: str | None = None,
    bearer_token_file: str | None = None,
    bearer_token_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers ``forward`` would send with these settings (``X-Scope-OrgID``, ``Authorization``),
    from flags named as ``forward.auth``'s keys; ConfigError naming the flag."""
    import os  # noqa: PLC0415

    environ = os.environ if environ is None else environ
    if (bearer_token_file or bearer_token_env) and (username or password_file or password_env):
        raise ConfigError("--bearer-token-file/--bearer-token-env and --username: choose one of them")
    if bool(username) != bool(password_file or password_env):
        raise ConfigError("--username: needs --password-file or --password-env, and the other way round")
    headers: dict[str, str] = {}
    if tenant:
        headers["X-Scope-OrgID"] = expanded("--tenant", tenant, environ)
        if not TENANT.fullmatch(headers["X-Scope-OrgID"]):
            raise ConfigError(f"--tenant: {TENANT_RULE}, got {headers['X-Scope-OrgID']!r}")
    try:
        token = read_secret("--bearer-token", env=bearer_token_env, file=bearer_token_file, environ=environ)
        password = read_secret("--password", env=password_env, file=password_file, environ=environ)
    except ConfigError as error:  # read_secret names "<key>_file": the flag is --<key>-file
        text = str(error).replace("_file:", "-file:", 1).replace("_env:", "-env:", 1)
        raise ConfigError(text) from None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif username and password is not None:
        user = expanded("--username", username, environ)
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return headers


def expanded(flag: str, value: str, environ: Mapping[str, str]) -> str:
    """``value`` with ``${env:NAME}`` replaced (the configuration's notation); ConfigError naming ``flag``."""
    try:
        return expand(value, environ)
    except MissingVariable as missing:
        raise ConfigError(f"{flag}: environment variable {missing.name!r} is not set") from None


@dataclass
class Progress:
    """A progress line on ``stream`` (a terminal) once reading has taken more than ``after``
    seconds; cleared when done. ``clock``: seconds, monotonic."""

    stream: IO[str] | None
    clock: Callable[[], float] = time.monotonic
    after: float = 1.0
    started: float = field(default=0.0, init=False)
    shown: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def update(self, what: str, entries: int, reached_ns: int) -> None:
        """Say how far reading ``what`` got (entries so far, up to which time)."""
        if self.stream is None or self.clock() - self.started <= self.after:
            return
        reached = datetime.fromtimestamp(reached_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        self.stream.write(f"\r\x1b[Kotelkv: reading {what} from Loki: {entries} entries, up to {reached}")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        """Clear the line, if one was shown."""
        if self.shown and self.stream is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def terminal_progress() -> Progress:
    """Progress on stderr when it is a terminal; none otherwise."""
    return Progress(sys.stderr if sys.stderr.isatty() else None)


class LokiQuery:
    """Queries one Loki (``url``: its base, e.g. ``http://loki-gateway.loki.svc``) with ``headers``."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        ca_file: str | None = None,
        timeout: float = 30.0,
        batch: int = 1000,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port  # ValueError for a port out of range or not a number
        except ValueError:  # "Invalid IPv6 URL", a bad port: never quoted (it may hold credentials)
            raise ConfigError(
                "--loki: not a valid URL (its host or port); must be http(s)://host[:port][/path]"
            ) from None
        if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
            raise ConfigError(f"--loki: must be http(s)://host[:port][/path], got {shown_url(url)!r}")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(
                "--loki: credentials in the URL are not sent; give --username with --password-file/-env, "
                "or --bearer-token-file/-env"
            )
        if parts.query or parts.fragment:
            raise ConfigError(
                "--loki: a URL with a query (?…) or a fragment (#…) is not Loki's base URL; give http(s)://host[:port][/path]"
            )
        self.url = url.rstrip("/")
        self.shown = shown_url(self.url)
        self.batch = batch
        #: The most entries all the pages of one run may hold (``--max-entries``).
        self.max_entries = max_entries
        self.received = 0
        self._headers = {**(headers or {}), ENCODING_FLAGS: CATEGORIZE, "Accept": "application/json"}
        self._timeout = timeout
        self._pool = urllib3.PoolManager(
            retries=False,
            cert_reqs="CERT_REQUIRED" if parts.scheme == "https" else "CERT_NONE",
            ca_certs=ca_file if parts.scheme == "https" else None,
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._pool.clear()

    def entries(
        self, query: str, start_ns: int, end_ns: int, *, what: str = "records", progress: Progress | None = None
    ) -> Iterator[LokiEntry]:
        """Every entry of ``query`` in ``[start_ns, end_ns)``, oldest first, a page at a time.

        Paging always moves on: entries outside the range asked are dropped, and a full page that
        brings nothing new or does not get past its start is a LokiError (a Loki that ignores
        ``start``); all the pages of a run hold at most :attr:`max_entries` entries."""
        start, seen, count = start_ns, set[tuple[int, str, frozenset[tuple[str, str]]]](), 0
        while start < end_ns:
            answered = self.page(query, start, end_ns)
            self.received += len(answered)
            if self.received > self.max_entries:
                raise LokiError(
                    f"Loki at {self.shown} answered more than {self.max_entries} entries in this run: give a "
                    "shorter range (--since, or --from and --to) or a larger --max-entries"
                )
            asked = start
            page = sorted((e for e in answered if asked <= e.time_ns < end_ns), key=lambda e: e.time_ns)
            fresh = [e for e in page if not (e.time_ns == asked and e.key() in seen)]
            count += len(fresh)
            yield from fresh
            if len(answered) < self.batch:
                break
            if len(page) == self.batch and page[0].time_ns == page[-1].time_ns:
                raise LokiError(
                    f"Loki at {self.shown}: more than {self.batch} entries share the timestamp "
                    f"{_when(page[0].time_ns)}; paging by time cannot pass them: give a larger --batch"
                )
            if not fresh or page[-1].time_ns <= asked:
                said = "the same page again" if not fresh else "a full page with nothing after its start"
                raise LokiError(
                    f"Loki at {self.shown} answered {said}: it does not honour start={asked} "
                    f"({_when(asked)}) in {QUERY_RANGE}"
                )
            start = page[-1].time_ns
            seen = {e.key() for e in page if e.time_ns == start}
            if progress is not None:
                progress.update(what, count, start)

    def page(self, query: str, start_ns: int, end_ns: int) -> list[LokiEntry]:
        """One query: at most :attr:`batch` entries from ``start_ns`` on, oldest first."""
        params = {
            "query": query,
            "start": str(start_ns),
            "end": str(end_ns),
            "limit": str(self.batch),
            "direction": "forward",
        }
        url = f"{self.url}{QUERY_RANGE}?{urlencode(params)}"
        deadline = time.monotonic() + self._timeout
        try:
            response = self._pool.request(
                "GET",
                url,
                headers=self._headers,
                timeout=urllib3.Timeout(total=self._timeout),
                preload_content=False,
                redirect=False,
            )
            try:
                body = self._body(response, deadline)
            except BaseException:
                response.close()  # the rest of the answer is not read: the connection is not reused
                raise
            finally:
                response.release_conn()
        except HTTPError as error:
            _, cause = failure_of(error)
            timed_out = isinstance(error, ReadTimeoutError | ConnectTimeoutError) and not isinstance(
                error,
                NewConnectionError,  # urllib3's NewConnectionError is a ConnectTimeoutError too
            )
            flag = "--timeout" if timed_out else "--loki"
            raise LokiError(f"cannot reach Loki at {self.shown}: {cause} ({flag})") from None
        text = body[:4096].decode("utf-8", "replace").strip()
        if 300 <= response.status < 400 and response.status != 304:
            where = response.headers.get("Location") or "nowhere"
            raise LokiError(
                f"Loki at {self.shown} answered {response.status}, redirecting to {shown_url(where)}; otelkv does "
                "not follow redirects (credentials must not go to another host): use that URL with --loki"
            )
        if response.status != 200:
            raise LokiError(_refusal(self.shown, response.status, text))
        return self._entries_of(body, text)

    def _body(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        """The whole body, read a chunk at a time: LokiError past the deadline or past
        :data:`MAX_ANSWER_BYTES` (before reading it, when Content-Length says so)."""
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_ANSWER_BYTES:
            raise LokiError(self._too_large())
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LokiError(
                    f"Loki at {self.shown} did not finish its answer within {self._timeout:g} seconds (--timeout)"
                )
            _set_read_timeout(response, remaining)
            try:
                chunk = response.read1(65536)
            except (ReadTimeoutError, TimeoutError):
                continue  # the deadline passed while waiting: said above
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise LokiError(self._too_large())
            chunks.append(chunk)

    def _too_large(self) -> str:
        return (
            f"Loki at {self.shown} answered more than {MAX_ANSWER_BYTES // 2**20} MiB for one query "
            "(otelkv's limit): give a smaller --batch"
        )

    def _entries_of(self, body: bytes, text: str) -> list[LokiEntry]:
        why = "something that is not a query result (is --loki Loki's base URL?)"
        try:
            if body.count(b"[") + body.count(b"{") + body.count(b",") > MAX_ANSWER_VALUES:
                why = f"more than {MAX_ANSWER_VALUES} JSON values (counted as [, {{ and commas): give a smaller --batch"
                raise ValueError(why)
            return list(read_answer(json.loads(body)))
        except RecursionError:
            why = "JSON nested too deeply"
        except BadTimestamp as bad:
            why = f"an entry's timestamp that is not nanoseconds since 1970 in Loki's range ({str(bad)[:40]!r})"
        except TooManyLabels:
            why = f"an entry with more than {MAX_ENTRY_LABELS} labels and metadata"
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            pass
        raise LokiError(f"Loki at {self.shown} answered 200 with {why}: {text[:100]!r}")


def _set_read_timeout(response: urllib3.BaseHTTPResponse, seconds: float) -> None:
    """Bound the next read of ``response`` by ``seconds`` (the socket's own timeout), so that the
    deadline holds however slowly the body comes."""
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _when(ns: int) -> str:
    """``ns`` as an RFC 3339 time, or the number where no date can say it."""
    try:
        return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return f"{ns} ns"


def _refusal(url: str, status: int, text: str) -> str:
    """One line saying why Loki refused the query, and which flag to look at."""
    first = text.splitlines()[0][:200] if text else "no message"
    if status in (401, 403):
        return (
            f"Loki at {url} refused the query ({status}: {first}): check --tenant and the credentials "
            "(--username with --password-file/--password-env, or --bearer-token-file/--bearer-token-env)"
        )
    if status == 400:
        lowered = text.lower()
        if "max entries limit" in lowered or "max_entries_limit" in lowered:
            return f"Loki at {url} refused the query: {first} (its max_entries_limit_per_query: give a smaller --batch)"
        if "query time range exceeds" in lowered or "max_query_length" in lowered:
            return (
                f"Loki at {url} refused the query: {first} (its max_query_length: give a shorter range with "
                "--since, or --from and --to)"
            )
        if "lookback" in lowered:
            return f"Loki at {url} refused the query: {first} (its max_query_lookback: give a later --since/--from)"
        return f"Loki at {url} refused the query (400: {first})"
    if status == 404:
        return f"Loki at {url} answered 404: no query API there (give Loki's base URL, without /otlp)"
    return f"Loki at {url} answered {status}: {first}"
