"""Tenant and headers towards the target (issue 8, item 7): what HTTP and gRPC metadata refuse is a
configuration error naming the key (exit 2), and an error of otelkv's own making is never a
permanent rejection of the client's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from otelkv import config
from otelkv.commands import main
from otelkv.errors import Retryable
from otelkv.forward.grpc import GrpcForwarder
from otelkv.forward.targets import make_forwarder
from tests import test_forward_targets
from tests.test_forward_targets import Recorder, forward_config, request

recorder = test_forward_targets.recorder  # the same fixture: a gRPC target recording what it gets

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("tab in tenant", {"tenant": "a\tb"}, "forward.tenant"),
    ("non-ASCII tenant", {"tenant": "tenant-ü"}, "forward.tenant"),
    ("CR/LF in tenant", {"tenant": "a\r\nX-Evil: 1"}, "forward.tenant"),
    ("slash in tenant", {"tenant": "a/b"}, "forward.tenant"),
    ("dot-dot tenant", {"tenant": ".."}, "forward.tenant"),
    ("tenant too long", {"tenant": "t" * 151}, "forward.tenant"),
    ("tab in header", {"headers": {"X-Api-Key": "s3cr3t\tkey"}}, "forward.headers.X-Api-Key"),
    ("LF in header", {"headers": {"X-Api-Key": "s3cr3t\nkey"}}, "forward.headers.X-Api-Key"),
    ("non-latin-1 header", {"headers": {"X-Api-Key": "s3cr3t—key"}}, "forward.headers.X-Api-Key"),
    ("NUL in header", {"headers": {"X-Api-Key": "s3cr3t\x00"}}, "forward.headers.X-Api-Key"),
    ("space in header name", {"headers": {"X Api Key": "s3cr3t"}}, "forward.headers.X Api Key"),
]
GRPC_BAD: list[tuple[str, dict[str, Any], str]] = [
    ("binary key", {"headers": {"x-trace-bin": "s3cr3t"}}, "forward.headers.x-trace-bin"),
    ("reserved key", {"headers": {"grpc-timeout": "s3cr3t"}}, "forward.headers.grpc-timeout"),
]


CASES = [("http://loki/otlp", f, k) for _, f, k in BAD] + [("grpc://gw:4317", f, k) for _, f, k in BAD + GRPC_BAD]
NAMES = [f"http {n}" for n, _, _ in BAD] + [f"grpc {n}" for n, _, _ in BAD + GRPC_BAD]


@pytest.mark.parametrize(("endpoint", "forward", "key"), CASES, ids=NAMES)
def test_refused_tenant_and_header_values_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, forward: dict[str, Any], key: str
) -> None:
    path = tmp_path / "otelkv.yaml"
    path.write_text(yaml.safe_dump({"forward": {"endpoint": endpoint, **forward}}, allow_unicode=True))
    assert main(["check-config", str(path)]) == 2
    error = capsys.readouterr().err
    assert f"otelkv: config: {key}:" in error
    assert "s3cr3t" not in error  # a header value may be a credential: never shown


@pytest.mark.parametrize("tenant", ["kubevirt", "team-a_(1)", "ops.prod", "A!*'"])
def test_valid_tenants_pass(tenant: str) -> None:
    config.load(
        environ={},
        overrides={
            "forward.endpoint": "grpc://gw:4317",
            "forward.tenant": tenant,
            "forward.headers": {"X-Team": "vm ops (1)"},
        },
    )


@pytest.mark.parametrize("tenant", ["a\tb", "tenant-ü", "a\r\nb"])
def test_metadata_grpcio_refuses_is_retryable_never_a_rejection(recorder: tuple[Recorder, int], tenant: str) -> None:
    """grpcio answers INTERNAL "Invalid metadata" itself, nothing sent: otelkv's fault, not the data's."""
    servicer, port = recorder
    forwarder = GrpcForwarder(f"127.0.0.1:{port}", secure=False, headers={"X-Scope-OrgID": tenant})
    try:
        with pytest.raises(Retryable, match="INTERNAL"):
            forwarder.send(request(), timeout=5)
    finally:
        forwarder.close()
    assert not servicer.received


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_set_up_errors_of_a_grpc_target_keep_the_data(recorder: tuple[Recorder, int], code: grpc.StatusCode) -> None:
    """Like the HTTP target's 401/403/404: retried while an operator fixes it, never dropped at once."""
    servicer, port = recorder
    servicer.answer = (code, None)
    forwarder = make_forwarder(forward_config(f"grpc://127.0.0.1:{port}"), max_message_bytes=1 << 20)
    try:
        with pytest.raises(Retryable, match=code.name):
            forwarder.send(request(), timeout=5)
    finally:
        forwarder.close()


def test_an_enriched_request_larger_than_max_message_bytes_still_goes(recorder: tuple[Recorder, int]) -> None:
    """Enrichment grows a request: otelkv's own receive limit is no send limit (grpcio would answer
    RESOURCE_EXHAUSTED itself, read as the target refusing the data for good)."""
    servicer, port = recorder
    big = request()
    forwarder = make_forwarder(forward_config(f"grpc://127.0.0.1:{port}"), max_message_bytes=big.ByteSize() // 2)
    try:
        assert forwarder.send(big, timeout=5).rejected == 0
    finally:
        forwarder.close()
    assert servicer.received[0][0] == big
