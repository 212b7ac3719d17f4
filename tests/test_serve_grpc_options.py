"""grpc core's channel arguments for the receiver (issue 18 items 2, 11, 12): one value per key,
the hardening always there, and the experimental read-buffer bound still known to grpc core."""

from __future__ import annotations

from pathlib import Path

import grpc

from otelkv.config import ReceiveGRPCConfig
from otelkv.receive.grpc_server import HARDENING, server_options


def test_each_key_once_and_the_hardening_always() -> None:
    options = server_options(ReceiveGRPCConfig(max_connection_age=60), 4 << 20)
    keys = [key for key, _ in options]
    assert len(keys) == len(set(keys))  # grpc core keeps the first of two values: never two
    values = dict(options)
    assert HARDENING.items() <= values.items()
    assert values["grpc.server_handshake_timeout_ms"] == 5000
    assert values["grpc.http2.bdp_probe"] == 0
    assert values["grpc.max_connection_age_ms"] == 60_000


def test_grpc_core_still_reads_the_experimental_read_buffer_bound() -> None:
    """``grpc.experimental.tcp_max_read_buffer_size`` is in no public header: a grpcio that drops
    it would ignore it silently and the WINDOW_UPDATE flood would take 200+ MiB again (the
    hostile suite measures that; this says why at once)."""
    core = Path(grpc.__file__).parent / "_cython"
    binaries = list(core.glob("cygrpc*.so")) + list(core.glob("cygrpc*.pyd"))
    assert binaries
    for key in HARDENING:
        assert any(key.encode() in b.read_bytes() for b in binaries), key
