"""Forward failures at the default log level (issue 12, item 1): a warning on the first failure of a
streak naming status and URL (never credentials), then one line every 30 s with the count, and
one at info when the target works again — in sync and in queue mode."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.config import Config
from otelkv.forward.http import HttpForwarder
from otelkv.server import Service
from otelkv.telemetry.streak import FailureStreak
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.reliability import numbered_events, requests_of, stored, wait_until

SECRETS = ("hunter2", "s3cr3t-key", "tok-123")


def test_a_streak_logs_its_first_failure_then_a_count_every_30s_then_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    streak = FailureStreak(logging.getLogger("t"), "forwarding to http://loki/otlp/v1/logs", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="t")
    streak.failed("answered 503")
    for _ in range(50):  # 50 more within the next 25 s: quiet
        now[0] += 0.5
        streak.failed("answered 503")
    now[0] += 6
    streak.failed("answered 401")
    now[0] += 1
    streak.recovered()
    streak.recovered()  # no streak: nothing to say
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "forwarding to http://loki/otlp/v1/logs failed: answered 503"),
        (
            "WARNING",
            "forwarding to http://loki/otlp/v1/logs still failing: 51 failures in the last 31s, "
            "52 over 31s: answered 401",
        ),
        ("INFO", "forwarding to http://loki/otlp/v1/logs works again after 52 failures over 32s"),
    ]


def otelkv_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("otelkv") and r.levelno >= logging.INFO]


def secret_config(sink: LokiSink, monkeypatch: pytest.MonkeyPatch, **more: object) -> Config:
    monkeypatch.setenv("LOKI_TOKEN", "tok-123")
    # (userinfo in forward.endpoint is refused by the configuration; the forwarder's own
    # handling of one is tested below)
    return make_config(
        sink.url,
        **{"forward.headers": {"X-Api-Key": "s3cr3t-key"}, "forward.auth.bearer_token_env": "LOKI_TOKEN", **more},
    )


def test_sync_failures_are_a_warning_then_quiet_then_info_on_recovery(
    sink: LokiSink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sink.script.extend([Scripted(401, {}, b"no org id\n")] * 3)
    svc = Service(secret_config(sink, monkeypatch))
    svc.start()
    caplog.set_level(logging.INFO)  # otelkv's default level
    try:
        requests = requests_of(numbered_events(40, "sync"), 10)
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            stub = LogsServiceStub(channel)
            for request in requests[:3]:
                with pytest.raises(grpc.RpcError):
                    stub.Export(request, timeout=5)
            stub.Export(requests[3], timeout=5)
    finally:
        svc.stop(5)
    lines = otelkv_lines(caplog)
    warnings = [r.getMessage() for r in lines if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "401" in warnings[0] and f"http://127.0.0.1:{sink.port}/otlp/v1/logs" in warnings[0]
    assert any(r.levelno == logging.INFO and "works again after 3 failures" in r.getMessage() for r in lines)
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert not [s for s in SECRETS if s in text]


def test_queue_failures_are_a_warning_at_once_not_after_the_retry_budget(
    sink: LokiSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = sink.port
    sink.stop()
    queue = {
        "delivery.mode": "queue",
        "delivery.store_path": str(tmp_path / "q.db"),
        "delivery.retry.initial_interval": 0.02,
        "delivery.retry.max_interval": 0.1,
    }
    svc = Service(secret_config(sink, monkeypatch, **queue))
    svc.start()
    caplog.set_level(logging.INFO)
    back = None
    try:
        request = requests_of(numbered_events(10, "queued"), 10)[0]
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            LogsServiceStub(channel).Export(request, timeout=5)
        assert wait_until(lambda: any(r.levelno == logging.WARNING for r in otelkv_lines(caplog)))
        back = LokiSink(port=port).start()
        assert wait_until(lambda: back is not None and len(stored(back)) == 10)
        assert wait_until(lambda: any("works again" in r.getMessage() for r in otelkv_lines(caplog)))
    finally:
        svc.stop(5)
        if back is not None:
            back.stop()
    warnings = [r.getMessage() for r in otelkv_lines(caplog) if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"127.0.0.1:{port}/otlp/v1/logs" in warnings[0]
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert not [s for s in SECRETS if s in text]


def test_an_endpoint_already_ending_in_v1_logs_is_warned_at_start(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    HttpForwarder("http://u:hunter2@loki/otlp/v1/logs/").close()
    [warning] = [r.getMessage() for r in caplog.records]
    assert "already ends in /v1/logs" in warning and "http://loki/otlp/v1/logs/v1/logs" in warning
    assert "hunter2" not in warning
