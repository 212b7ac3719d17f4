"""Shared test set-up: Hypothesis profiles, the KubeVirt catalogue, a running otelkv and sink."""

from __future__ import annotations

import os
import shlex
import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from hypothesis import HealthCheck, settings
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv import config
from otelkv.otlp import native
from otelkv.server import Service
from tests.loki_sink import LokiSink

# "ci": deterministic and quick (make test); "long": many more examples (make test-long).
settings.register_profile("ci", derandomize=True, max_examples=150, deadline=None, print_blob=True)
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
CATALOGUE = DATA / "kubevirt-events.yaml"
EXAMPLE = ROOT / "examples" / "kubevirt-events.json"
TENANT = "kubevirt"


def load_catalogue() -> dict[str, Any]:
    """KubeVirt's event catalogue (``../shared/kubevirt/events.yaml``, vendored)."""
    with CATALOGUE.open() as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


@pytest.fixture(scope="session")
def catalogue() -> dict[str, Any]:
    return load_catalogue()


# -- otelkv serve, with real sockets on loopback ports the OS chooses ----------------------------


def make_config(endpoint: str, **overrides: Any) -> config.Config:
    """A configuration on loopback port 0 forwarding to ``endpoint`` with a 1 s timeout."""
    # initial_interval 30 s: no retry fits the 1 s budget, so sync mode answers after one attempt
    # and the tests see each fault; tests of the retry itself set it lower. Summary records are
    # off so that delivery tests count the records they sent; tests of summaries turn them on.
    values: dict[str, Any] = {
        "grpc_listen": "127.0.0.1:0",
        "http_listen": "127.0.0.1:0",
        "forward.endpoint": endpoint,
        "forward.tenant": TENANT,
        "forward.timeout": 1.0,
        "shutdown_grace_seconds": 5.0,
        "delivery.retry.initial_interval": 30.0,
        "delivery.retry.max_interval": 30.0,
        "enrich.summaries": False,
    }
    values.update(overrides)
    return config.load(environ={}, overrides=values)


@pytest.fixture
def sink() -> Iterator[LokiSink]:
    running = LokiSink().start()
    yield running
    running.stop()


@pytest.fixture
def service(sink: LokiSink) -> Iterator[Service]:
    running = Service(make_config(sink.url))
    running.start()
    yield running
    running.stop(2)


@pytest.fixture
def summarising(sink: LokiSink, request: pytest.FixtureRequest) -> Iterator[LogsServiceStub]:
    """A client of an ``otelkv serve`` that writes summaries (more settings: indirect parameters)."""
    overrides = getattr(request, "param", {})
    running = Service(make_config(sink.url, **{"enrich.summaries": True, **overrides}))
    running.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            yield LogsServiceStub(channel)
    finally:
        running.stop(2)


@pytest.fixture
def stub(service: Service) -> Iterator[LogsServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        yield LogsServiceStub(channel)


# -- the two enrichment cores (issue 13): the compiled one and the pure-Python reference ----------


def why_no_compiler() -> str | None:
    """Why this machine cannot build the compiled core (no C compiler, no Python headers), or None."""
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler!r} not found)"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return f"no Python headers (Python.h not in {sysconfig.get_paths()['include']})"
    return None


def compiled_core() -> native.Choice:
    """The compiled core, for a test of it: FAILS where it is missing on a machine that can build it
    (CI has gcc and the Python headers: a core that silently did not build must not pass as tested);
    skips, saying why, only where there is no compiler or ``OTELKV_NO_EXTENSIONS`` asks for the
    reference."""
    if native.disabled(os.environ):
        pytest.skip(f"{native.NO_EXTENSIONS_ENV} is set: the reference path only")
    chosen = native.decide({})
    if chosen.module is None:
        missing = why_no_compiler()
        if missing is None:
            pytest.fail(
                f"the compiled core should be built here and is not ({chosen.reason}): make test "
                "builds it; see `pip install -v -e .`"
            )
        pytest.skip(f"{chosen.reason}; this machine cannot build it: {missing}")
    return chosen


@pytest.fixture(params=["native", "python"])
def core(request: pytest.FixtureRequest) -> Iterator[native.Choice]:
    """Run the test once on each core: ``otelkv.otlp.native.core()`` returns the one chosen
    (``native``: :func:`compiled_core`)."""
    python = native.Choice(module=None, reason="chosen by the test")
    chosen = python if request.param == "python" else compiled_core()
    previous = native.select(chosen)
    yield chosen
    native.select(previous)
