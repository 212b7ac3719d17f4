"""OTLP/HTTP protobuf to Loki's native OTLP endpoint (or any OTLP/HTTP receiver).

Loki's rules (Loki 3.6, ``pkg/loghttp/push/otlp.go`` and ``pkg/distributor/http.go``):
POST ``<endpoint>/v1/logs`` (the collector's ``otlp_http``
convention; Loki's endpoint is ``…/otlp``), Content-Type exactly ``application/x-protobuf``,
204 for success, 400 when some entries failed validation — the valid ones are stored, so the
request must not be sent again; Loki's message ends ``total ignored: N out of M``, and a 400
without that count (any other OTLP receiver's) refuses the whole request — 429 for rate limits,
500s turned into 503, 401 ``no org id`` without ``X-Scope-OrgID`` when auth is on, and through
the chart's gateway an HTML 413 for bodies over 4 MiB.
"""

from __future__ import annotations

import gzip
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import urllib3
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs
from urllib3.exceptions import HTTPError, InsecureRequestWarning

from otelkv import __version__
from otelkv.errors import Retryable

from . import Delivery, Encoded, Redactor, Request, count_records, message, wire

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "application/x-protobuf"
# Not the data's fault but the set-up's (auth, tenant, URL): the collector keeps the data and
# retries while an operator fixes it, rather than dropping it at once.
_SETUP_STATUSES: Final = frozenset({401, 403, 404, 407, 408, 409})
_IGNORED: Final = re.compile(r"total ignored: (\d+) out of (\d+)")


class HttpForwarder:
    """Sends gzip'ed OTLP protobuf over a pooled urllib3 connection."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        ca_file: str | None = None,
        insecure_skip_verify: bool = False,
        compression: bool = True,
        pool_size: int = 8,
    ) -> None:
        self._url = endpoint.rstrip("/") + "/v1/logs"
        self._shown = shown_url(self._url)  # for logs, metrics and answers: never credentials
        warning = endpoint_warning(endpoint)
        if warning is not None:
            log.warning("%s", warning)
        self._headers = {"User-Agent": f"otelkv/{__version__}", **(headers or {}), "Content-Type": CONTENT_TYPE}
        if compression:
            self._headers["Content-Encoding"] = "gzip"
        self._redact = Redactor(self._headers, also=[urlsplit(endpoint).password])
        self._compression = compression
        verify = self._url.startswith("https://") and not insecure_skip_verify
        if self._url.startswith("https://") and insecure_skip_verify:
            # Said once here, not as urllib3's warning on every request.
            log.warning("forward.tls.insecure_skip_verify: the certificate of %s is not verified", self._shown)
            urllib3.disable_warnings(InsecureRequestWarning)
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=pool_size,
            block=False,
            retries=False,
            cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
            ca_certs=ca_file if verify else None,
        )

    @property
    def target(self) -> str:
        """The URL requests go to, without any user:password in it."""
        return self._shown

    def send(self, request: Request, *, timeout: float) -> Delivery:
        """POST ``request``; classify the answer (module docstring).

        A 413 (the gateway's body limit) splits the request in halves and sends each, down to
        single resources; only a single resource too large for the target is reported rejected.
        If a later half then fails, the collector's retry re-sends the halves already stored
        (at-least-once). ``timeout`` bounds all of it: the halves share what is left of it. The
        parts refused whole come back in :attr:`Delivery.refused`, to be kept as a dead letter.
        """
        return self._send(request, time.monotonic() + timeout)

    def _send(self, request: Request, deadline: float) -> Delivery:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Retryable(
                f"{self._shown}: timed out splitting a request the target found too large", error_type="timeout"
            )
        status, delivery = self._post(request, remaining)
        if status != 413:
            return delivery
        request = message(request)
        if len(request.resource_logs) < 2:
            return delivery
        half = len(request.resource_logs) // 2
        parts = [_joined(request.resource_logs[:half]), _joined(request.resource_logs[half:])]
        done = [self._send(part, deadline) for part in parts]
        rejected = sum(d.rejected for d in done)
        kinds = sorted({d.error_type for d in done if d.error_type})
        refused = [r for r in map(_refused, parts, done) if r is not None]
        return Delivery(
            rejected,
            "; ".join(d.message for d in done if d.message),
            ",".join(kinds),
            # serialized requests concatenated are one request holding all their resources
            Encoded(b"".join(r.payload for r in refused), sum(r.records for r in refused)) if refused else None,
        )

    def _post(self, request: Request, timeout: float) -> tuple[int, Delivery]:
        body = wire(request)
        if self._compression:
            body = gzip.compress(body, compresslevel=1)  # CPU over bytes: ~3x faster than 6
        try:
            response = self._pool.request(
                "POST", self._url, body=body, headers=self._headers, timeout=urllib3.Timeout(total=timeout)
            )
        except HTTPError as error:
            kind, cause = failure_of(error)
            raise Retryable(f"{self._shown}: {cause}", error_type=kind) from error
        try:
            delivery = classify(
                response.status,
                response.headers,
                response.data,
                count_records(request),
                self._shown,
                redact=self._redact,
            )
        except Retryable as error:  # the target's words go to logs and to otelkv's client: no secrets
            raise Retryable(
                self._redact(str(error)), retry_after=error.retry_after, error_type=error.error_type
            ) from error
        return response.status, replace(delivery, message=self._redact(delivery.message))

    def close(self) -> None:
        """Close pooled connections; safe twice."""
        self._pool.clear()


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    records: int,
    url: str,
    *,
    redact: Callable[[str], str] = str,
) -> Delivery:
    """What an HTTP answer means for the request (one table, see the module docstring).

    ``redact`` takes secrets out of the target's words before they are cut short: a cut first
    would leave a secret's head, which no longer matches it, in the message.
    """
    text = redact(body[:65536].decode("utf-8", "replace")).strip()
    if 200 <= status < 300:
        if status == 200 and body and headers.get("Content-Type", "").startswith(CONTENT_TYPE):
            try:
                partial = ExportLogsServiceResponse.FromString(body).partial_success
            except DecodeError as error:  # a broken answer proves nothing was stored: send again
                raise Retryable(
                    f"{url} answered {status} with a body that is not an ExportLogsServiceResponse",
                    error_type="bad_response",
                ) from error
            kind = "partial_success" if partial.rejected_log_records or partial.error_message else ""
            return Delivery(partial.rejected_log_records, partial.error_message, kind)
        return Delivery()
    if status == 429 or status >= 500 or status in _SETUP_STATUSES:
        raise Retryable(
            f"{url} answered {status}: {text[:300]}",
            retry_after=retry_after(headers.get("Retry-After")),
            error_type=str(status),
        )
    if status == 400:  # Loki stored the valid entries and says how many it ignored: never re-send
        found = _IGNORED.search(text)
        # Without Loki's count (any other OTLP receiver's 400, a malformed-body 400) the number
        # refused is unknown: the whole request counts as refused (and becomes a dead letter).
        rejected = min(int(found.group(1)), records) if found else records
        first = text.splitlines()[0][:300] if text else ""
        summary = f"{first} … {found.group(0)}" if found and found.group(0) not in first else first
        return Delivery(rejected, f"{url} answered 400: {summary}", "400")
    return Delivery(records, f"{url} answered {status}: {text[:300]}", str(status))


def _joined(resources: Iterable[ResourceLogs]) -> Encoded:
    """``resources`` as one serialized request, built on the wire (field 1, length-delimited, each):
    building a message of them copies each through upb's decoder, whose 100-level limit refuses
    a record the receivers took deeper than that (49 nested arrays)."""
    chunks: list[bytes] = []
    records = 0
    for resource in resources:
        body = resource.SerializeToString()
        chunks += (b"\x0a", _varint(len(body)), body)
        records += sum(len(scope.log_records) for scope in resource.scope_logs)
    return Encoded(b"".join(chunks), records)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _refused(part: Encoded, delivery: Delivery) -> Encoded | None:
    """The records of ``part`` refused for good that can be kept as they were: all of it when the
    target refused it whole, what its own halves refused otherwise (None if it did not say)."""
    if delivery.refused is not None:
        return delivery.refused
    if delivery.rejected and delivery.rejected >= part.records:
        return part
    return None


def endpoint_warning(endpoint: str) -> str | None:
    """Why ``forward.endpoint`` is likely a mistake though valid (an OTLP/HTTP one that already
    ends in ``/v1/logs``: otelkv appends it), or None; never shows credentials."""
    if not urlsplit(endpoint).path.rstrip("/").endswith("/v1/logs"):
        return None
    posted = shown_url(endpoint.rstrip("/") + "/v1/logs")
    return (
        f"forward.endpoint {shown_url(endpoint)} already ends in /v1/logs; otelkv appends /v1/logs (the "
        f"collector's otlp_http convention), so requests go to {posted}: give the base URL (Loki: …/otlp)"
    )


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() too, which float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def shown_url(url: str) -> str:
    """``url`` as logs and clients see it: scheme, host, port and path — no ``user:password@``, no
    query string (which may carry a token), no fragment."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment=""))


_ERRNO: Final = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def failure_of(error: HTTPError) -> tuple[str, str]:
    """The class of a failure to talk to the target, as the Collector's exporters name it
    (``connection``: refused, unreachable, the name not resolved, reset; ``tls``; ``timeout``), and
    its cause in a few words (urllib3's own text repeats the host and names its classes)."""
    reason: BaseException = error
    while isinstance(reason, urllib3.exceptions.MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    found = _ERRNO.search(str(reason))
    why = found.group(1).strip().lower() if found else ""
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "connection", f"cannot resolve the name{f' ({why})' if why else ''}"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError too: first
        return "connection", f"cannot connect: {why or 'connection failed'}"
    if isinstance(reason, urllib3.exceptions.SSLError):
        return "tls", f"TLS: {reason}"
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return "timeout", "timed out"
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        return "connection", f"connection lost: {why or reason}"
    return "connection", f"{why or reason}"
