"""TLS towards the target: a private CA file, verification failures, the insecure switch."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from otelkv import config
from otelkv.commands.replay import batches
from otelkv.errors import Retryable
from otelkv.forward.targets import make_forwarder
from tests.loki_sink import LokiSink
from tests.test_serve_grpc import events


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loki-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "ca.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_sink(tmp_path: Path) -> Iterator[tuple[LokiSink, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    sink = LokiSink(tls=context).start()
    yield sink, cert
    sink.stop()


def send(endpoint: str, **tls: object) -> None:
    cfg = config.build(config.ForwardConfig, {"endpoint": endpoint, "tenant": "t", "tls": tls}, "forward.")
    forwarder = make_forwarder(cfg, max_message_bytes=1 << 20)
    try:
        forwarder.send(next(batches(events()[:2], 10)), timeout=5)
    finally:
        forwarder.close()


def test_https_with_the_ca_file(tls_sink: tuple[LokiSink, Path]) -> None:
    sink, ca = tls_sink
    assert sink.url.startswith("https://")
    send(sink.url, ca_file=str(ca))
    assert len(sink.entries) == 2


def test_https_with_an_unknown_ca_is_refused_as_retryable(tls_sink: tuple[LokiSink, Path]) -> None:
    sink, _ = tls_sink
    with pytest.raises(Retryable, match=r"SSL|certificate"):
        send(sink.url)
    assert sink.entries == []


def test_insecure_skip_verify(tls_sink: tuple[LokiSink, Path]) -> None:
    sink, _ = tls_sink
    send(sink.url, insecure_skip_verify=True)
    assert len(sink.entries) == 2
