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
from typing import IO, Any, Final
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError

from otelkv.config.notation import MissingVariable, expand
from otelkv.config.secrets import read_secret
from otelkv.errors import ConfigError, UserError
from otelkv.forward.http import failure_of, shown_url

__all__ = ["ENCODING_FLAGS", "LokiEntry", "LokiError", "LokiQuery", "Progress", "credentials"]

QUERY_RANGE: Final = "/loki/api/v1/query_range"
ENCODING_FLAGS: Final = "X-Loki-Response-Encoding-Flags"
CATEGORIZE: Final = "categorize-labels"


class LokiError(UserError, RuntimeError):
    """Loki could not be reached, refused the query, or answered something else than a result."""


@dataclass(frozen=True, slots=True)
class LokiEntry:
    """One log entry: its time (ns), its line, and its index labels, structured metadata and
    parsed labels in one mapping (the names as Loki writes them: ``kubevirt_vm_name``)."""

    time_ns: int
    line: str
    labels: Mapping[str, str]

    def key(self) -> tuple[int, str, frozenset[tuple[str, str]]]:
        """What tells two entries apart (Loki itself answers one for identical ones)."""
        return self.time_ns, self.line, frozenset(self.labels.items())


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
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--loki: must be http(s)://host[:port][/path], got {shown_url(url)!r}")
        self.url = url.rstrip("/")
        self.shown = shown_url(self.url)
        self.batch = batch
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
        """Every entry of ``query`` in ``[start_ns, end_ns)``, oldest first, a page at a time."""
        start, seen, count = start_ns, set[tuple[int, str, frozenset[tuple[str, str]]]](), 0
        while start < end_ns:
            page = sorted(self.page(query, start, end_ns), key=lambda e: e.time_ns)
            for entry in page:
                if entry.time_ns == start and entry.key() in seen:
                    continue  # already had it: the previous page ended at this timestamp
                count += 1
                yield entry
            if len(page) < self.batch:
                break
            last = page[-1].time_ns
            if page[0].time_ns == last:
                when = datetime.fromtimestamp(last / 1e9, UTC).isoformat()
                raise LokiError(
                    f"Loki at {self.shown}: more than {self.batch} entries share the timestamp {when}; "
                    "paging by time cannot pass them: give a larger --batch"
                )
            seen = {e.key() for e in page if e.time_ns == last}
            start = last
            if progress is not None:
                progress.update(what, count, last)

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
        try:
            response = self._pool.request(
                "GET", url, headers=self._headers, timeout=urllib3.Timeout(total=self._timeout)
            )
        except HTTPError as error:
            _, cause = failure_of(error)
            raise LokiError(f"cannot reach Loki at {self.shown}: {cause} (--loki)") from None
        text = response.data[:4096].decode("utf-8", "replace").strip()
        if response.status != 200:
            raise LokiError(_refusal(self.shown, response.status, text))
        try:
            return list(_read(json.loads(response.data)))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise LokiError(
                f"Loki at {self.shown} answered 200 with something that is not a query result "
                f"(is --loki Loki's base URL?): {text[:100]!r}"
            ) from None


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


def _read(answer: Any) -> Iterator[LokiEntry]:
    """The entries of a ``streams`` answer, in either encoding."""
    if answer["status"] != "success":
        raise ValueError(answer["status"])
    data = answer["data"]
    if data["resultType"] != "streams":
        raise ValueError(data["resultType"])
    categorized = CATEGORIZE in (data.get("encodingFlags") or ())
    for stream in data["result"]:
        labels = {str(k): str(v) for k, v in stream["stream"].items()}
        for value in stream["values"]:
            merged = labels
            if categorized and len(value) > 2 and value[2]:
                merged = dict(labels)
                for part in ("structuredMetadata", "parsed"):
                    merged.update({str(k): str(v) for k, v in (value[2].get(part) or {}).items()})
            yield LokiEntry(int(value[0]), str(value[1]), merged)
