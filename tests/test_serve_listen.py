"""Where otelkv listens by default, what it says at start, and the trial bind (issue 18 item 6 and
the last round's open ends)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
import trustme

from otelkv import config
from otelkv.receive import listen
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink


def test_the_otlp_listeners_default_to_loopback() -> None:
    defaults = config.Config()
    assert config.split_host_port(defaults.grpc_listen)[0] == "127.0.0.1"
    assert config.split_host_port(defaults.http_listen)[0] == "127.0.0.1"


def _serving(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    [record] = [r for r in caplog.records if r.getMessage() == "otelkv serving"]
    return dict(record.__dict__)


def test_the_start_up_line_says_where_and_how(sink: LokiSink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "otelkv.server")
    svc = Service(make_config(sink.url))
    svc.start()
    svc.stop(0.5)
    line = _serving(caplog)
    assert (line["grpc_listen"], line["http_listen"], line["auth"], line["tls"]) == (
        "127.0.0.1:0",
        "127.0.0.1:0",
        "none",
        "off",
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # loopback: nothing to warn about


def test_tls_without_a_token_beyond_loopback_is_warned_about(
    sink: LokiSink, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """TLS hides the data on the wire but proves no one's identity: anyone who reaches the port writes."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    caplog.set_level(logging.INFO, "otelkv.server")
    tls = {"receive.tls.cert_file": str(cert), "receive.tls.key_file": str(key)}
    svc = Service(make_config(sink.url, http_listen="0.0.0.0:0", **tls))
    svc.start()
    svc.stop(0.5)
    assert _serving(caplog)["tls"] == "TLS" and _serving(caplog)["auth"] == "none"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("http_listen 0.0.0.0:0 is reachable beyond this host") for m in warned)


def test_the_trial_bind_checks_the_family_the_listener_binds(monkeypatch: pytest.MonkeyPatch) -> None:
    """For host ``""`` the HTTP listener binds IPv4 (0.0.0.0); the trial bind took getaddrinfo's
    first answer, ``::`` where gai.conf puts IPv6 first, and checked a socket never bound."""
    assert listen.bind_family("") == listen.bind_family("0.0.0.0") == socket.AF_INET
    assert listen.bind_family("::") == socket.AF_INET6
    real = socket.getaddrinfo
    asked: list[int] = []

    def ipv6_first(host: Any, port: Any, family: int = 0, *args: Any, **kwargs: Any) -> Any:
        asked.append(family)
        answers = real(host, port, family, *args, **kwargs)
        return sorted(answers, key=lambda a: a[0] != socket.AF_INET6)

    monkeypatch.setattr(socket, "getaddrinfo", ipv6_first)
    with socket.socket(socket.AF_INET6) as v6only:  # [::]:port held, IPv6 only: IPv4 0.0.0.0:port free
        v6only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6only.bind(("::", 0))
        v6only.listen()
        port = v6only.getsockname()[1]
        listen.check_listen("http_listen", f":{port}")  # the listener would bind: so must the check
    assert asked == [socket.AF_INET]
