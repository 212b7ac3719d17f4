"""A light sidecar (issue 13 item 4, issue 24 item 4): ``otelkv serve`` imports what its
configuration uses, no more.

Each case builds the service as ``otelkv serve`` does, in a fresh interpreter, and lists the
modules it holds: idle RSS and start-up time follow from those (bench/bench.py measures them;
no timing or RSS is asserted here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: The modules a configuration may or may not need.
OPTIONAL = (
    "yaml",
    "urllib3",
    "sqlite3",
    "otelkv.delivery.store",
    "otelkv.delivery.salvage",
    "otelkv.delivery.sender",
    "otelkv.delivery.store_check",
    "otelkv.commands.event_file",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "aiohttp",
    "prometheus_client",
    "opentelemetry.sdk.metrics",
    "otelkv.receive.grpc_health",
)
#: What an HTTP listener brings (OTLP/HTTP, or /healthz, /readyz and /metrics): aiohttp, and the
#: metrics SDK with its Prometheus reader for /metrics.
HTTP = {"aiohttp", "prometheus_client", "opentelemetry.sdk.metrics"}
#: The modules no configuration needs: aiohttp's web framework (applications, routing, runners,
#: file responses, WebSockets) beside the low-level server the HTTP receiver runs.
NEVER = ("aiohttp.web",)

_PROGRAM = """
import json, sys
from otelkv import commands, config
from otelkv.server import Service
cfg = config.load(sys.argv[1] or None, overrides=json.loads(sys.argv[2]))
service = Service(cfg)
service.stop(0)
print(json.dumps(sorted(m for m in {optional} if m in sys.modules)))
"""


def _imported(tmp_path: Path, overrides: dict[str, str], file: str = "") -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTELKV_")}
    overrides = {"grpc_listen": "127.0.0.1:0", "http_listen": "127.0.0.1:0", **overrides}
    program = _PROGRAM.format(optional=repr(OPTIONAL + NEVER))
    done = subprocess.run(
        [sys.executable, "-c", program, file, json.dumps(overrides)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_stdout_target_without_a_file_imports_the_http_listener_only(tmp_path: Path) -> None:
    assert _imported(tmp_path, {}) == HTTP


def test_http_target_imports_urllib3_only(tmp_path: Path) -> None:
    assert _imported(tmp_path, {"forward.endpoint": "http://127.0.0.1:9/otlp"}) == {"urllib3"} | HTTP


def test_grpc_target_imports_none_of_them(tmp_path: Path) -> None:
    assert _imported(tmp_path, {"forward.endpoint": "grpc://127.0.0.1:9"}) == HTTP


def test_a_file_brings_yaml(tmp_path: Path) -> None:
    (tmp_path / "otelkv.yaml").write_text("log_level: info\n")
    assert _imported(tmp_path, {}, file=str(tmp_path / "otelkv.yaml")) == {"yaml"} | HTTP


@pytest.mark.parametrize("mode", ["sync", "queue"])
def test_a_store_brings_sqlite3_and_the_store(tmp_path: Path, mode: str) -> None:
    found = _imported(tmp_path, {"delivery.store_path": str(tmp_path / "store"), "delivery.mode": mode})
    assert found - HTTP == {"sqlite3", "otelkv.delivery.store", "otelkv.delivery.salvage"} | (
        {"otelkv.delivery.sender"} if mode == "queue" else set()
    )


def test_metrics_otlp_endpoint_brings_the_otlp_exporter(tmp_path: Path) -> None:
    found = _imported(tmp_path, {"metrics_otlp_endpoint": "127.0.0.1:9"})
    assert found == {"opentelemetry.exporter.otlp.proto.grpc.metric_exporter"} | HTTP


def test_without_an_http_listener_neither_aiohttp_nor_the_metrics_sdk(tmp_path: Path) -> None:
    """No HTTP listener and nowhere to put metrics: grpcio and the pipeline, nothing else."""
    assert _imported(tmp_path, {"http_listen": ""}) == set()


def test_the_sidecar_configuration_imports_neither_aiohttp_nor_prometheus_client(tmp_path: Path) -> None:
    """As collector-config/values-sidecar.yaml runs it: OTLP/gRPC on loopback, probes on gRPC
    health, metrics pushed to the collector over OTLP, a store, Loki over http://."""
    sidecar = {
        "http_listen": "",
        "admin_grpc_listen": "127.0.0.1:0",
        "metrics_otlp_endpoint": "127.0.0.1:9",
        "forward.endpoint": "http://127.0.0.1:9/otlp",
        "delivery.store_path": str(tmp_path / "store"),
    }
    found = _imported(tmp_path, sidecar)
    assert not found & {"aiohttp", "prometheus_client"}
    assert found == {
        "urllib3",
        "sqlite3",
        "otelkv.delivery.store",
        "otelkv.delivery.salvage",
        "otelkv.receive.grpc_health",
        "opentelemetry.sdk.metrics",
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    }


def test_an_http_admin_listener_alone_brings_aiohttp(tmp_path: Path) -> None:
    assert _imported(tmp_path, {"http_listen": "", "admin_listen": "127.0.0.1:0"}) == HTTP


def test_the_http_receiver_runs_aiohttps_low_level_server() -> None:
    """What the receiver imports from aiohttp's modules is what ``aiohttp.web`` exports as its
    low-level server (so the receiver behaves as ``aiohttp.web.Server`` would)."""
    from aiohttp import web  # noqa: PLC0415 - here only, never in the service

    from otelkv.receive import http_server  # noqa: PLC0415

    used = vars(http_server)
    for name in ("Server", "BaseRequest", "Response", "StreamResponse"):
        assert used[name] is getattr(web, name), name
