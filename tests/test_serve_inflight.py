"""The in-flight cap holds a request's memory until its worker is done with it, not until its
call ends: a call cancelled by its deadline (or its client) leaves the worker decoding, enriching
and forwarding, and that memory must stay counted, or behind a slow target up to
``receive.grpc.workers`` requests sit outside the cap. A request that cannot fit is refused
before it makes what it would be charged for (a gzip body before it is inflated)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import socket
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import urllib3
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.errors import Retryable
from otelkv.forward import Delivery, Request
from otelkv.pipeline import InflightBytes, Reservation
from otelkv.receive.body import INFLATE_COST
from otelkv.receive.pool import run_charged
from otelkv.server import Service
from tests.conftest import make_config
from tests.reliability import wait_until
from tests.test_serve_grpc import requests
from tests.test_serve_http_protocol import post_head
from tests.test_serve_limits import large_request


class Gate:
    """A forwarder that blocks in ``send`` until opened: a target slower than any deadline.

    Not a double of Loki or the collector (it answers nothing on the wire), only of a slow target.
    """

    target = "gate"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.left = threading.Event()

    def send(self, request: Request, *, timeout: float) -> Delivery:
        self.entered.set()
        self.opened.wait(30)  # bounded: a failing test must not leave the worker behind for good
        self.left.set()
        return Delivery()

    def close(self) -> None:
        self.opened.set()


@pytest.fixture
def gated() -> Iterator[tuple[Service, Gate]]:
    gate = Gate()
    svc = Service(make_config("http://127.0.0.1:9/otlp"), forwarder=gate)
    svc.start()
    try:
        yield svc, gate
    finally:
        gate.opened.set()
        svc.stop(1)


def calls_running(loop: asyncio.AbstractEventLoop) -> int:
    """How many tasks run on a receiver's event loop (a call's handler is one of them)."""

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1  # not this one

    return asyncio.run_coroutine_threadsafe(count(), loop).result(5)


def test_a_grpc_call_past_its_deadline_stays_charged_until_its_worker_is_done(gated: tuple[Service, Gate]) -> None:
    svc, gate = gated
    inflight = svc.pipeline.inflight
    loop = svc._grpc._loop
    idle = calls_running(loop)
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
        call = LogsServiceStub(channel).Export.future(requests()[0], timeout=30)
        assert gate.entered.wait(10)  # the worker is inside the forwarder
        assert calls_running(loop) > idle
        call.cancel()  # as a deadline does: the call ends, the worker goes on
        assert wait_until(lambda: calls_running(loop) == idle, 10)  # the call's coroutine has ended
    assert inflight.charged > 0 and not gate.left.is_set()  # the request is still in memory, and counted
    gate.opened.set()
    assert wait_until(lambda: inflight.charged == 0, 10)


def test_a_grpc_deadline_expiring_in_the_forwarder_keeps_the_charge(gated: tuple[Service, Gate]) -> None:
    svc, gate = gated
    inflight = svc.pipeline.inflight
    loop = svc._grpc._loop
    idle = calls_running(loop)
    with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
        stub = LogsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Export(requests()[0], timeout=1.0, wait_for_ready=True)
        assert isinstance(caught.value, grpc.Call) and caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert gate.entered.wait(10)  # the worker is (or gets) inside the forwarder all the same
        assert wait_until(lambda: calls_running(loop) == idle, 10)
        assert inflight.charged > 0 and not gate.left.is_set()
        gate.opened.set()
        assert wait_until(lambda: inflight.charged == 0, 10)


def test_an_http_request_cut_off_at_shutdown_stays_charged_until_its_worker_is_done(
    gated: tuple[Service, Gate],
) -> None:
    # aiohttp (>= 3.9, handler_cancellation off) does not cancel a handler whose client went away:
    # it runs on, and the charge with it. But the stop then leaves that handler behind, never to
    # resume (or cancels a connected one after the grace) while its worker is in the forwarder.
    svc, gate = gated
    inflight = svc.pipeline.inflight
    body = requests()[0].SerializeToString()
    with socket.create_connection(("127.0.0.1", svc.http_port), timeout=10) as raw:
        raw.sendall(post_head(len(body)) + body)
        assert gate.entered.wait(10)
    assert inflight.charged > 0  # the client is gone, its request still being forwarded
    assert svc._http is not None  # http_listen is set
    svc._http.stop(0.1)
    assert inflight.charged > 0 and not gate.left.is_set()
    gate.opened.set()
    assert wait_until(lambda: inflight.charged == 0, 10)


class _Marker:
    """Stands for a request's bytes (bytes take no weak reference)."""


def _fails(marker: _Marker) -> None:
    raise RuntimeError("the worker failed")  # its frame, with ``marker``, is in the traceback


def test_a_failed_request_is_freed_at_once_not_by_the_cyclic_collector() -> None:
    """Found by bench/bench.py --memory-only (768 MiB peak against 100 before this round): when
    run_charged was a coroutine, its frame held the worker's future and the request while the
    worker's exception passed through it; the exception (in the future) and the frame (in its
    traceback) kept each other, and every refused request's bytes, until the cyclic collector ran."""
    marker = _Marker()
    freed = weakref.ref(marker)

    async def call(pool: ThreadPoolExecutor, request: _Marker) -> None:
        with contextlib.suppress(RuntimeError):
            await run_charged(pool, Reservation(InflightBytes(100)), _fails, request)

    gc.collect()
    gc.disable()
    try:
        with ThreadPoolExecutor(1) as pool:
            asyncio.run(call(pool, marker))
        del marker
        assert freed() is None, "the request outlived its call: held by a reference cycle"
    finally:
        gc.enable()


def test_what_is_charged_ahead_is_drawn_on_by_the_steps_that_follow() -> None:
    inflight = InflightBytes(100)
    reservation = Reservation(inflight)
    reservation.ahead(60)
    assert inflight.charged == 60
    reservation.add(50)  # drawn from what was charged ahead
    assert inflight.charged == 60 and reservation.credit == 10
    reservation.add(20)  # 10 drawn, 10 more charged
    assert inflight.charged == 70 and reservation.credit == 0
    with pytest.raises(Retryable):
        Reservation(inflight).ahead(31)  # does not fit now: nothing charged
    assert inflight.charged == 70
    reservation.release()
    assert inflight.charged == 0


def _post_gzip(port: int, body: bytes) -> int:
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    answer = urllib3.request("POST", f"http://127.0.0.1:{port}/v1/logs", body=body, headers=headers, timeout=30)
    return answer.status


def test_gzip_requests_that_cannot_fit_are_refused_before_they_are_inflated(gated: tuple[Service, Gate]) -> None:
    """Found by bench/bench.py --memory-only (issue 24): while one request held most of the cap,
    each of 16 clients' gzip bodies (16 KiB inflating to 4 MiB) was inflated 256 KiB at a time
    until the cap was reached, then refused: the refused requests together took the cap's free
    room in memory (the HTTP part of the mix peaked at 115-125 MiB, 77-85 now). The size the gzip
    trailer declares is charged first: they are refused before anything is inflated."""
    svc, gate = gated
    inflight = svc.pipeline.inflight
    payload = large_request(4 * 2**20 - 1024).SerializeToString()
    body = gzip.compress(payload)
    held: list[int] = []
    first = threading.Thread(target=lambda: held.append(_post_gzip(svc.http_port, body)))
    first.start()
    try:
        assert gate.entered.wait(10)  # 40 MiB of the 64 charged, until the target answers
        holding = inflight.charged
        assert holding >= INFLATE_COST * len(payload)
        for _ in range(15):
            assert _post_gzip(svc.http_port, body) == 503
        # only their wire bytes were charged while they were read: none was inflated
        assert inflight.peak <= holding + len(body), f"peak {inflight.peak}, held {holding}"
    finally:
        gate.opened.set()
        first.join(30)
    assert held == [200]
    assert wait_until(lambda: inflight.charged == 0, 10)
