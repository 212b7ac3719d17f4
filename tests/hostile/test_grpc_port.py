"""Attacks on the OTLP/gRPC port of a real ``otelkv serve`` with the default limits (issue 18
items 2, 11, 12 and the held ones). Each asserts the promises of :func:`held`; the one attack grpc
core does not bound (many small headers in endless CONTINUATION frames) asserts the documented
per-connection bound instead (docs/security.md#what-remains)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import attacks
from tests.hostile.harness import besiege, held, scale, target
from tests.loki_sink import LokiSink

pytestmark = pytest.mark.hostile


def test_unfinished_streams_without_the_token_pin_nothing(tmp_path: Path, sink: LokiSink) -> None:
    """Item 2: with ``receive.auth`` set, streams without a token declaring 4 MiB each are refused
    before grpc reads their message (main before the fix: 40 x 16 streams, 384 MiB)."""
    conns = int(scale(48, 96))
    with target(tmp_path, sink, token=True) as server:
        outcome = besiege("streams without token", server, attacks.stream_hold, server.grpc_port, scale(5, 20), conns)
    assert outcome.attack["streams_ended"] > 0  # refused, and replaced by the attacker
    held(outcome, sink, served_over="grpc")


def test_silent_sockets_are_closed_at_the_handshake_deadline(tmp_path: Path, sink: LokiSink) -> None:
    """Item 11: 300 connections that never send the HTTP/2 preface took every one of the 256
    connection slots for grpc's default 120 s; now they are closed after 5 s and exports resume."""
    with target(tmp_path, sink) as server:
        outcome = besiege("silent sockets", server, attacks.silent_sockets, server.grpc_port, scale(9, 20), 300)
    assert outcome.attack["closed_by_server"] == 300 - outcome.attack["connect_failed"]
    held(outcome, sink, served_over="grpc")


@pytest.mark.parametrize(
    ("name", "attack", "conns"),
    [
        # item 12: grpc read ahead without bound (main: 248-260 MiB on 4 connections)
        ("one endless header", lambda h, p, s, c: attacks.continuation_flood(h, p, s, c, "long"), 4),
        # item 12: answers never read (main: 202-428 MiB on 8 connections)
        ("WINDOW_UPDATE flood", attacks.window_update_flood, 8),
        # held before and since
        ("rapid reset", attacks.rapid_reset, 4),
        ("HPACK bomb", attacks.hpack_bomb, 4),
        ("PING flood", lambda h, p, s, c: attacks.control_flood(h, p, s, c, "ping"), 4),
        ("SETTINGS flood", lambda h, p, s, c: attacks.control_flood(h, p, s, c, "settings"), 4),
        ("PRIORITY flood", lambda h, p, s, c: attacks.control_flood(h, p, s, c, "priority"), 4),
    ],
)
def test_frame_floods_are_held(tmp_path: Path, sink: LokiSink, name: str, attack: attacks.Attack, conns: int) -> None:
    # A WINDOW_UPDATE flood slows each legitimate export to a second or more on two cores (2-3
    # served in 4 s, at times none): it is watched 10 s so that "served during it" is about
    # starvation, not about one slow export.
    seconds = scale(10, 20) if name == "WINDOW_UPDATE flood" else scale(4, 20)
    with target(tmp_path, sink) as server:
        outcome = besiege(name, server, attack, server.grpc_port, seconds, conns)
    held(outcome, sink, served_over="grpc")


#: docs/security.md#what-remains: what one connection sending endless CONTINUATION frames of small
#: distinct headers makes grpc core hold (measured 25-190 MiB on grpcio 1.85, not bounded by any
#: channel argument; the budget does not hold for it: keep the port to the collector).
CONTINUATION_PER_CONNECTION_MIB = 200


def test_many_small_headers_cost_at_most_the_documented_bound_per_connection(tmp_path: Path, sink: LokiSink) -> None:
    many = lambda h, p, s, c: attacks.continuation_flood(h, p, s, c, "many")  # noqa: E731
    with target(tmp_path, sink) as server:
        outcome = besiege("many small headers", server, many, server.grpc_port, scale(5, 20), 1)
    held(outcome, sink, served_over="grpc", budget=outcome.rss_start + CONTINUATION_PER_CONNECTION_MIB)
    assert outcome.attack["closed_by_server"] == 0  # pinned: grpc never ends such a connection
