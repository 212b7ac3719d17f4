"""A target's 400 (issue 8, item 10): with Loki's ``total ignored: N`` count (FACTS §3: Loki stored
the valid entries) only those N are refused; without it (any OTLP receiver's plain 400) the whole
request is refused — counted as rejected, never as forwarded, logged at warning, dead-lettered
where a store exists."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.forward.http import classify
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.reliability import numbered_events, requests_of, stored, wait_until

PLAIN_400 = Scripted(400, {"Content-Type": "text/plain; charset=utf-8"}, b"invalid request: bad things\n")


@pytest.mark.parametrize(
    ("body", "rejected"),
    [
        (b"", 7),
        (b"proto: cannot parse invalid wire-format data", 7),
        (b"entry too old\ntotal ignored: 2 out of 7\n", 2),
        (b"total ignored: 9 out of 9", 7),  # never more than the request held
    ],
)
def test_a_400_refuses_what_loki_counted_else_everything(body: bytes, rejected: int) -> None:
    delivery = classify(400, {}, body, 7, "http://loki/otlp/v1/logs")
    assert delivery.rejected == rejected and "answered 400" in delivery.message


def total(svc: Service, name: str) -> float:
    text = svc.telemetry.prometheus_text().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


@pytest.mark.parametrize("mode", ["sync", "queue"])
def test_a_plain_400_is_rejected_whole_and_dead_lettered(
    sink: LokiSink, tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    sink.script.append(PLAIN_400)
    config = make_config(
        sink.url,
        **{
            "delivery.mode": mode,
            "delivery.store_path": str(tmp_path / "store.db"),
            "delivery.retry.initial_interval": 0.02,
        },
    )
    svc = Service(config)
    svc.start()
    caplog.set_level(logging.WARNING)
    try:
        request = requests_of(numbered_events(10, "plain400"), 10)[0]
        with grpc.insecure_channel(f"127.0.0.1:{svc.grpc_port}") as channel:
            answer = LogsServiceStub(channel).Export(request, timeout=5)
        if mode == "sync":  # the collector hears which records were refused
            assert answer.partial_success.rejected_log_records == 10
        assert svc.store is not None
        assert wait_until(lambda: svc.store is not None and len(svc.store.dead_letters()) == 1)
        [letter] = svc.store.dead_letters()
        assert letter.records == 10 and "answered 400" in letter.error
        assert total(svc, "otelkv_records_forwarded_total") == 0
        assert total(svc, "otelkv_records_rejected_total") == 10
        assert total(svc, "otelkv_records_dead_lettered_total") == 10
        assert any(r.levelno == logging.WARNING and "answered 400" in r.getMessage() for r in caplog.records)
        assert not stored(sink)
    finally:
        svc.stop(5)
