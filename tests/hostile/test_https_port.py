"""Attacks on the OTLP/HTTP port with TLS, through a real ``otelkv serve`` (issue 18 item 10 and
the held TLS attacks): the connection is counted, and refused beyond the limits, before any TLS
state exists; a handshake or a request head that never ends is closed at its deadline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import attacks
from tests.hostile.harness import besiege, held, scale, target
from tests.loki_sink import LokiSink

pytestmark = pytest.mark.hostile


def test_stalled_tls_handshakes_are_bounded(tmp_path: Path, sink: LokiSink) -> None:
    """Item 10: 1,000 half ClientHellos held ~310 KiB each before (343-365 MiB); now at most 64
    handshakes are in progress and nothing beyond ``receive.http.max_connections`` gets TLS state."""
    with target(tmp_path, sink, tls=True) as server:
        outcome = besiege("stalled TLS handshakes", server, attacks.tls_stall, server.http_port, scale(5, 20), 1000)
    assert outcome.attack["closed_by_server"] > 0
    held(outcome, sink, served_over="http")


def test_https_slowloris_is_closed_at_the_header_deadline(tmp_path: Path, sink: LokiSink) -> None:
    with target(tmp_path, sink, tls=True) as server:
        outcome = besiege("HTTPS slowloris", server, attacks.https_slowloris, server.http_port, scale(5, 14), 300)
    held(outcome, sink, served_over="http")


def test_tls_renegotiation_is_refused(tmp_path: Path, sink: LokiSink) -> None:
    with target(tmp_path, sink, tls=True) as server:
        outcome = besiege("TLS renegotiation", server, attacks.tls_renegotiation, server.http_port, scale(4, 15), 2)
    assert outcome.attack["closed_by_server"] >= 2  # the first "R" ends the connection
    held(outcome, sink, served_over="http")
