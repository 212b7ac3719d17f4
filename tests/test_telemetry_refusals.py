"""Refusals under load are counted: requests refused for lack of in-flight room, and HTTP
connections otelkv closed at its limit or for slow headers. The collector sees all of them as
UNAVAILABLE / 503 only, so /metrics is where an operator tells them from a failing target."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import patch

import grpc
import pytest

from otelkv.errors import StoreUnavailable
from otelkv.server import Service
from tests.conftest import ROOT, make_config
from tests.loki_sink import LokiSink
from tests.test_serve_http_protocol import connect, read_response
from tests.test_serve_limits import MiB, grpc_export, http_export, large_request, started
from tests.test_telemetry import samples

BUSY = '{error_type="busy"}'
QUEUE_FULL, STORE = '{error_type="queue_full"}', '{error_type="store_unavailable"}'
LIMIT, HEADER_TIMEOUT = '{reason="limit"}', '{reason="header_timeout"}'


def metrics(svc: Service) -> dict[str, float]:
    """The refusal counters' samples, ``{name + labels: value}``."""
    text = svc.telemetry.prometheus_text().decode()
    found = {f"requests{labels}": value for labels, value in samples(text, "otelkv_requests_refused_total").items()}
    found.update(
        {f"connections{labels}": value for labels, value in samples(text, "otelkv_connections_closed_total").items()}
    )
    return found


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as resources:
        yield resources


def test_refusal_counters_exist_from_the_start_at_zero_with_their_attributes(sink: LokiSink) -> None:
    svc = Service(make_config(sink.url))
    try:
        tls = ('{reason="tls_handshake"}', '{reason="handshake_limit"}')
        assert metrics(svc) == {
            f"requests{BUSY}": 0.0,
            f"connections{LIMIT}": 0.0,
            f"connections{HEADER_TIMEOUT}": 0.0,
            **{f"connections{reason}": 0.0 for reason in tls},
        }
    finally:
        svc.stop(0)


def test_requests_refused_as_busy_are_counted_over_grpc_and_http(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink)
    stack.callback(svc.stop, 1)
    inflight = svc.pipeline.inflight
    request = large_request(200 * 1024)
    with inflight.admit(inflight.limit - MiB):  # all but 1 MiB taken: neither request fits
        assert grpc_export(svc, request) == grpc.StatusCode.UNAVAILABLE
        assert http_export(svc, request.SerializeToString()).status == 503
    assert metrics(svc)[f"requests{BUSY}"] == 2
    assert grpc_export(svc, request) == grpc.StatusCode.OK  # room again: taken, and not counted
    assert metrics(svc)[f"requests{BUSY}"] == 2


def test_a_connection_refused_at_the_limit_is_counted(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink, **{"receive.http.max_connections": 2})
    stack.callback(svc.stop, 1)
    for _ in range(2):
        stack.enter_context(connect(svc))
    with connect(svc) as extra:
        assert read_response(extra)[0] == 503
    assert metrics(svc)[f"connections{LIMIT}"] == 1 and metrics(svc)[f"connections{HEADER_TIMEOUT}"] == 0


def test_connections_closed_for_slow_headers_are_counted_on_both_listeners(sink: LokiSink, stack: ExitStack) -> None:
    svc = started(sink, admin_listen="127.0.0.1:0", **{"receive.http.read_header_timeout": 0.5})
    stack.callback(svc.stop, 1)
    for port in (svc.http_port, svc.admin_port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: otelkv\r\n")  # and never the end of the head
            assert slow.recv(100) == b""  # closed by otelkv after read_header_timeout
    assert metrics(svc)[f"connections{HEADER_TIMEOUT}"] == 2 and metrics(svc)[f"connections{LIMIT}"] == 0


def documented_metrics() -> set[str]:
    """The metric names docs/serve.md lists (``a_{b,c}_d`` read as ``a_b_d``, ``a_c_d``)."""
    text = (ROOT / "docs" / "serve.md").read_text()
    names: set[str] = set()
    for written in re.findall(r"`(otelkv_[a-z_{},]+)`", text):
        head, _, rest = written.partition("{")
        choices, _, tail = rest.partition("}")
        names.update(f"{head}{choice}{tail}" for choice in choices.split(",")) if rest else names.add(written)
    return names


def test_the_serve_doc_names_every_metric(sink: LokiSink, tmp_path: Path) -> None:
    svc = Service(make_config(sink.url, **{"delivery.mode": "queue", "delivery.store_path": str(tmp_path / "q.db")}))
    try:
        text = svc.telemetry.prometheus_text().decode()
    finally:
        svc.stop(0)
    exported = set(re.findall(r"^# TYPE (\S+) (?:counter|gauge|histogram)$", text, re.M))
    assert exported and not exported - documented_metrics()


def test_queue_mode_counts_requests_the_store_refused(sink: LokiSink, tmp_path: Path, stack: ExitStack) -> None:
    """Queue full (the bound reached while the target is down) and the store unable to write (disk
    full, I/O error) are answered UNAVAILABLE like the rest: counted by error type."""
    sink.stop()  # nothing drains the queue
    svc = started(
        sink,
        **{
            "delivery.mode": "queue",
            "delivery.store_path": str(tmp_path / "store.db"),
            "delivery.queue_max_records": 1,
        },
    )
    stack.callback(svc.stop, 1)
    assert metrics(svc)[f"requests{QUEUE_FULL}"] == 0 and metrics(svc)[f"requests{STORE}"] == 0
    request = large_request(1024)
    assert grpc_export(svc, request) == grpc.StatusCode.OK  # the one record the queue holds
    assert grpc_export(svc, large_request(2048)) == grpc.StatusCode.UNAVAILABLE
    assert metrics(svc)[f"requests{QUEUE_FULL}"] == 1
    store = svc.pipeline.store
    assert store is not None

    def broken(payload: bytes, records: int) -> None:
        raise StoreUnavailable("disk full (a test double of the store's own error)")

    stack.enter_context(patch.object(store, "put", broken))
    assert http_export(svc, large_request(4096).SerializeToString()).status == 503
    assert metrics(svc)[f"requests{STORE}"] == 1
    assert metrics(svc)[f"requests{BUSY}"] == 0
