"""``otelkv replay`` says which hop failed, and feeds a secured otelkv (issue 20 items 1, 7, 8).

Before: with serve listening and its Loki down, replay said "connection refused to <serve> (is
otelkv serve listening there?)" — serve was listening and had answered with its target's URL.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from otelkv.commands import main
from otelkv.server import Service
from tests.conftest import EXAMPLE, make_config
from tests.loki_sink import LokiSink

TOKEN = "replay-token-0123456789"


def _replay(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["replay", str(EXAMPLE), "--timeout", "5", *args])
    return code, out.getvalue(), err.getvalue()


def test_nothing_listening_is_this_hop() -> None:
    code, _, err = _replay("--to", "127.0.0.1:1")
    assert code == 2
    expected = "cannot reach otelkv serve at 127.0.0.1:1: connection refused (is it listening there? see --grpc-listen)"
    assert err == f"otelkv: {expected}\n"


def test_a_target_down_behind_serve_is_the_next_hop_with_its_url(sink: LokiSink, service: Service) -> None:
    sink.stop()
    code, _, err = _replay("--to", f"127.0.0.1:{service.grpc_port}")
    assert code == 2
    assert err.startswith(f"otelkv: otelkv serve at 127.0.0.1:{service.grpc_port} answered UNAVAILABLE: {sink.url}")
    assert "connection refused" in err and "is it listening" not in err


def test_the_http_port_is_named_as_not_grpc(service: Service) -> None:
    code, _, err = _replay("--to", f"127.0.0.1:{service.http_port}")
    assert code == 2 and "does not speak gRPC" in err, err


@pytest.fixture
def secured(sink: LokiSink, tmp_path: Path) -> Iterator[tuple[Service, Path]]:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    running = Service(make_config(sink.url, **{"receive.auth.bearer_token_file": str(token)}))
    running.start()
    yield running, token
    running.stop(2)


def test_replay_carries_a_bearer_token(secured: tuple[Service, Path], sink: LokiSink) -> None:
    service, token = secured
    to = f"127.0.0.1:{service.grpc_port}"
    code, _, err = _replay("--to", to)
    assert code == 2 and "refused the call" in err and "--bearer-token-file" in err, err
    code, out, err = _replay("--to", to, "--bearer-token-file", str(token))
    assert code == 0 and out.startswith("sent "), err
    assert sink.entries


def test_a_missing_token_file_is_named_by_its_flag(tmp_path: Path) -> None:
    code, _, err = _replay("--to", "127.0.0.1:1", "--bearer-token-file", str(tmp_path / "nope"))
    assert code == 2 and err.startswith("otelkv: --bearer-token-file: cannot read"), err


def test_a_ca_file_that_is_not_pem_ends_in_one_line(service: Service, tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    code, _, err = _replay("--to", f"127.0.0.1:{service.grpc_port}", "--ca-file", str(bad))
    assert code == 2 and err.count("\n") == 1 and err.startswith("otelkv: "), err
    assert "internal error" not in err
