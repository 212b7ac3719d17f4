"""TLS, mTLS and bearer tokens on both listeners (issue 9 items 1 and 2).

Certificates are made in the test by trustme (a CA, server and client leaves with the right
extensions), on loopback only.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.config import ConfigError
from otelkv.config.secrets import read_token
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink
from tests.test_serve_grpc import requests

TOKEN = "s3cr3t-t0ken-do-not-log"


class Pki:
    """A CA and the files otelkv and its clients read, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = trustme.CA()
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file, self.key_file = directory / "server.pem", directory / "server.key"
        self.issue_server("first")

    def issue_server(self, name: str) -> trustme.LeafCert:
        leaf = self.ca.issue_cert("127.0.0.1", "localhost", common_name=name)
        # written to new files then renamed over the old ones, as a Secret volume update does
        for blob, path in ((leaf.cert_chain_pems[0], self.cert_file), (leaf.private_key_pem, self.key_file)):
            blob.write_to_path(str(path.with_name(path.name + ".new")))
        for path in (self.cert_file, self.key_file):
            os.replace(path.with_name(path.name + ".new"), path)
        return leaf

    def client_files(self, ca: trustme.CA | None = None) -> tuple[Path, Path]:
        leaf = (ca or self.ca).issue_cert("client@otelkv.test")
        cert, key = self.dir / "client.pem", self.dir / "client.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def tls_service(sink: LokiSink, pki: Pki, *, mutual: bool = False, overrides: dict[str, Any] | None = None) -> Service:
    keys: dict[str, Any] = {"receive.tls.cert_file": str(pki.cert_file), "receive.tls.key_file": str(pki.key_file)}
    if mutual:
        keys["receive.tls.client_ca_file"] = str(pki.ca_file)
    svc = Service(make_config(sink.url, **keys, **(overrides or {})))
    svc.start()
    return svc


@pytest.fixture
def stopping() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for svc in started:
        svc.stop(1)


def https(
    svc: Service,
    pki: Pki,
    method: str = "GET",
    path: str = "/healthz",
    *,
    client: tuple[Path, Path] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, str]:
    """An HTTPS request; the status, body and the server certificate's common name."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if client:
        context.load_cert_chain(*map(str, client))
    connection = http.client.HTTPSConnection("127.0.0.1", svc.http_port, context=context, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        assert connection.sock is not None
        peer = connection.sock.getpeercert()
        subject: Any = peer["subject"] if peer else ()
        names = {key: value for rdn in subject for key, value in rdn}
        common_name = str(names.get("commonName", ""))
        return answer.status, answer.read(), common_name
    finally:
        connection.close()


def grpc_call(
    svc: Service, pki: Pki | None, *, client: tuple[Path, Path] | None = None, token: str | None = None
) -> grpc.StatusCode:
    target = f"127.0.0.1:{svc.grpc_port}"
    if pki is None:
        channel = grpc.insecure_channel(target)
    else:
        key = client[1].read_bytes() if client else None
        chain = client[0].read_bytes() if client else None
        credentials = grpc.ssl_channel_credentials(pki.ca_file.read_bytes(), key, chain)
        channel = grpc.secure_channel(target, credentials)
    metadata = [("authorization", f"Bearer {token}")] if token else None
    with channel:
        try:
            LogsServiceStub(channel).Export(requests(size=7)[0], timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            return error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


def test_tls_on_both_listeners(sink: LokiSink, pki: Pki, stopping: list[Service]) -> None:
    svc = tls_service(sink, pki)
    stopping.append(svc)
    assert https(svc, pki)[:2] == (200, b"ok\n")
    body = requests(size=7)[0].SerializeToString()
    assert https(svc, pki, "POST", "/v1/logs", body=body, headers={"Content-Type": "application/x-protobuf"})[0] == 200
    assert grpc_call(svc, pki) == grpc.StatusCode.OK
    with socket.create_connection(("127.0.0.1", svc.http_port), timeout=5) as raw:  # plain HTTP is not served
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" not in raw.recv(100)


def test_mtls_refuses_clients_without_a_certificate_from_the_ca(
    sink: LokiSink, pki: Pki, stopping: list[Service]
) -> None:
    svc = tls_service(sink, pki, mutual=True)
    stopping.append(svc)
    good = pki.client_files()
    assert https(svc, pki, client=good)[0] == 200
    assert grpc_call(svc, pki, client=good) == grpc.StatusCode.OK
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https(svc, pki)  # no client certificate
    assert grpc_call(svc, pki) == grpc.StatusCode.UNAVAILABLE
    stranger = pki.client_files(trustme.CA())  # from another CA
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https(svc, pki, client=stranger)
    assert grpc_call(svc, pki, client=stranger) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest.mark.parametrize("listener", ["http", "grpc"])
def test_tls_1_1_is_refused(sink: LokiSink, pki: Pki, stopping: list[Service], listener: str) -> None:
    svc = tls_service(sink, pki)
    stopping.append(svc)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(pki.ca_file))
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_alpn_protocols(["h2" if listener == "grpc" else "http/1.1"])
    port = svc.grpc_port if listener == "grpc" else svc.http_port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, pytest.raises(ssl.SSLError) as caught:
        context.wrap_socket(raw, server_hostname="localhost")
    if caught.value.reason == "NO_PROTOCOLS_AVAILABLE":
        pytest.skip("this OpenSSL cannot offer TLS 1.1 at all, so the server's refusal cannot be seen")
    # the server ends the handshake (an alert or a close); the same client allowed 1.2 gets through
    assert caught.value.reason in (
        "UNEXPECTED_EOF_WHILE_READING",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
        "WRONG_VERSION_NUMBER",
    )
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        assert context.wrap_socket(raw, server_hostname="localhost").version() == "TLSv1.2"


def test_tls_1_3_minimum_refuses_1_2_on_http(sink: LokiSink, pki: Pki, stopping: list[Service]) -> None:
    svc = tls_service(sink, pki, overrides={"receive.tls.min_version": "1.3"})
    stopping.append(svc)
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", svc.http_port), timeout=5) as raw, pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="localhost")


def test_renewed_certificates_are_served_without_a_restart(sink: LokiSink, pki: Pki, stopping: list[Service]) -> None:
    svc = tls_service(sink, pki)
    stopping.append(svc)
    assert https(svc, pki)[2] == "first"
    assert grpc_call(svc, pki) == grpc.StatusCode.OK
    renewed = pki.issue_server("second")
    for _ in range(50):  # the HTTP listener looks every second; bounded
        if https(svc, pki)[2] == "second":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the HTTP listener still serves the old certificate")
    served = ssl.get_server_certificate(("127.0.0.1", svc.grpc_port), ca_certs=str(pki.ca_file))
    assert served.strip() == renewed.cert_chain_pems[0].bytes().decode().strip()


def test_a_half_rotated_pair_keeps_the_previous_certificate_serving(
    sink: LokiSink, pki: Pki, stopping: list[Service], caplog: pytest.LogCaptureFixture
) -> None:
    # Found by probing: a new certificate whose key has not arrived yet (or a cut key file) was
    # half-loaded into the live HTTP context, and every new handshake failed until the next change.
    svc = tls_service(sink, pki)
    stopping.append(svc)
    assert https(svc, pki)[2] == "first"
    other = pki.ca.issue_cert("127.0.0.1", common_name="other")
    other.cert_chain_pems[0].write_to_path(str(pki.cert_file))  # the certificate only: key mismatch
    for _ in range(50):  # the HTTP listener looks every second; bounded
        if "keeping the previous TLS certificate" in caplog.text:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the mismatched pair was not noticed")
    assert https(svc, pki)[2] == "first"  # still served, handshakes work
    pki.issue_server("second")  # the rotation completes
    for _ in range(50):
        if https(svc, pki)[2] == "second":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the completed rotation was not picked up")


def test_bearer_token_on_both_listeners(
    sink: LokiSink, stopping: list[Service], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the token must not appear at any level
    monkeypatch.setenv("OTELKV_TEST_TOKEN", TOKEN)
    svc = Service(make_config(sink.url, **{"receive.auth.bearer_token_env": "OTELKV_TEST_TOKEN"}))
    svc.start()
    stopping.append(svc)
    assert grpc_call(svc, None, token=TOKEN) == grpc.StatusCode.OK
    assert grpc_call(svc, None) == grpc.StatusCode.UNAUTHENTICATED
    assert grpc_call(svc, None, token="wrong") == grpc.StatusCode.UNAUTHENTICATED
    body = requests(size=7)[0].SerializeToString()

    def post(headers: dict[str, str]) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", svc.http_port, timeout=10)
        connection.request("POST", "/v1/logs", body=body, headers={"Content-Type": "application/x-protobuf", **headers})
        answer = connection.getresponse()
        return answer.status, answer.read()

    assert post({"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert post({})[0] == 401
    status, answer = post({"Authorization": "Bearer nope"})
    assert status == 401 and TOKEN.encode() not in answer

    def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", svc.http_port, timeout=10)
        connection.request("GET", path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()

    assert get("/healthz")[0] == 200 and get("/readyz")[0] == 200  # health stays open
    assert get("/metrics")[0] == 401
    status, metrics = get("/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert re.search(rb"^otelkv_requests_unauthenticated_total(\{[^}]*\})? 5\.0$", metrics, re.M)
    assert TOKEN not in caplog.text and TOKEN.encode() not in metrics


def test_metrics_can_be_left_open(sink: LokiSink, stopping: list[Service], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTELKV_TEST_TOKEN", TOKEN)
    svc = Service(
        make_config(
            sink.url, **{"receive.auth.bearer_token_env": "OTELKV_TEST_TOKEN", "receive.auth.protect_metrics": False}
        )
    )
    svc.start()
    stopping.append(svc)
    connection = http.client.HTTPConnection("127.0.0.1", svc.http_port, timeout=10)
    connection.request("GET", "/metrics")
    assert connection.getresponse().status == 200


@pytest.mark.parametrize(
    ("content", "taken"),
    [
        (f"{TOKEN}\n", TOKEN),
        (f"{TOKEN}\r\n", TOKEN),
        (TOKEN, TOKEN),
        (f"{TOKEN}\nsecond-line\n", None),
        (f"{TOKEN}\r\n\n", None),
        ("\n", None),
    ],
)
def test_token_files_are_checked_and_never_shown(tmp_path: Path, content: str, taken: str | None) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    if taken is not None:
        assert read_token(env=None, file=str(path)) == taken
        return
    with pytest.raises(ConfigError) as caught:
        read_token(env=None, file=str(path))
    assert str(caught.value).startswith("receive.auth.bearer_token_file:") and str(path) in str(caught.value)
    assert TOKEN not in str(caught.value)
