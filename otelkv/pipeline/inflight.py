"""The in-flight memory cap: what requests being received and processed may take at once (wire,
inflated and decoded bytes, docs/reliability.md). A request that does not fit is refused with
UNAVAILABLE / 503 before its bytes are read; its charge is given back once its worker is done."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, Protocol

from otelkv.errors import BadRequest, Retryable

__all__ = ["Charge", "InflightBytes", "Reservation"]


class Charge(Protocol):
    """Where the memory a step is about to make is counted (:meth:`Reservation.add`): it raises
    :class:`~otelkv.errors.Retryable` when the cap is full now, :class:`~otelkv.errors.BadRequest`
    (too large) when the request could never fit."""

    def add(self, size: int) -> None:
        """Charge ``size`` more bytes."""

    def ahead(self, size: int) -> None:
        """Charge now ``size`` bytes that later steps will make; their :meth:`add` draws on it first."""


class InflightBytes:
    """A cap on the memory requests hold at once (wire bytes, inflated bytes, decoded messages):
    beyond it, requests are refused, never queued in memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.charged = 0
        self.peak = 0
        #: requests refused for lack of room (``otelkv_requests_refused_total{error_type="busy"}``)
        self.refused = 0
        self._lock = threading.Lock()

    @contextmanager
    def reserve(self) -> Iterator[Reservation]:
        """A reservation that grows as the request is read and decoded; all of it released after
        (unless :meth:`Reservation.keep_until` handed it to a worker)."""
        reservation = Reservation(self)
        try:
            yield reservation
        finally:
            reservation.release()

    def _give_back(self, size: int) -> None:
        with self._lock:
            self.charged -= size

    @contextmanager
    def admit(self, size: int) -> Iterator[None]:
        """Hold ``size`` bytes for the block; :class:`Retryable` when that would pass the cap."""
        with self.reserve() as reservation:
            reservation.add(size)
            yield

    def _take(self, reservation: Reservation, size: int) -> None:
        with self._lock:
            if reservation.charged + size > self.limit:  # would not fit even alone: never will
                raise BadRequest(
                    f"request needs about {reservation.charged + size} bytes of memory, more than "
                    f"delivery.max_inflight_bytes {self.limit}",
                    too_large=True,
                )
            if self.charged + size > self.limit:
                self.refused += 1
                raise Retryable(f"otelkv is busy: {self.charged} request bytes in flight, limit {self.limit}")
            self.charged += size
            reservation.charged += size
            self.peak = max(self.peak, self.charged)


class Reservation:
    """The memory one request holds, grown step by step (:meth:`InflightBytes.reserve`), given back
    once: by :meth:`release`, or when the worker it was handed to is done (:meth:`keep_until`)."""

    def __init__(self, owner: InflightBytes) -> None:
        self._owner = owner
        self.charged = 0
        #: charged ahead (:meth:`ahead`) and not yet drawn on by :meth:`add`
        self.credit = 0
        self._kept = False
        self._released = False
        self._lock = threading.Lock()

    def add(self, size: int) -> None:
        """Hold ``size`` more bytes; :class:`Retryable` when the cap is reached, :class:`BadRequest`
        (too large) when this request alone would pass it. What :meth:`ahead` charged and no step
        drew on yet is drawn on first. One request's steps run one after the other (read, then its
        worker), never at once: no lock."""
        drawn = min(size, self.credit)
        self.credit -= drawn
        if size > drawn:
            self._owner._take(self, size - drawn)

    def ahead(self, size: int) -> None:
        """Charge ``size`` bytes that the request's later steps will make, before the first of them:
        a request that cannot fit is refused before it makes any (their :meth:`add` draws on it)."""
        self._owner._take(self, size)
        self.credit += size

    def release(self) -> None:
        """Give back what it holds — unless a worker holds it now (:meth:`keep_until`)."""
        if not self._kept:
            self._give_back()

    def keep_until(self, done: Future[Any]) -> None:
        """Hold it until ``done`` (the worker's future) is done: :meth:`release` no longer does.

        A gRPC call cancelled by its deadline or its client (an HTTP handler cancelled at a stop)
        ends while its worker still decodes, enriches and forwards the request: given back then,
        that memory would sit outside the cap — behind a slow target, a whole pool of requests.
        """
        self._kept = True
        done.add_done_callback(lambda _: self._give_back())

    def _give_back(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._owner._give_back(self.charged)
