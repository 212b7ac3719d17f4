"""Helpers of the fault-injection suite: numbered records, a collector-like client, counting."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub

from otelkv.commands.replay import batches
from otelkv.forward.grpc import retry_delay
from tests.conftest import EXAMPLE
from tests.loki_sink import LokiSink

# FACTS §2: the codes the collector's otlp exporter retries (RESOURCE_EXHAUSTED only with RetryInfo).
RETRIED = {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}


def numbered_events(count: int, prefix: str = "id") -> list[dict[str, Any]]:
    """``count`` KubeVirt events, each with its own uid (``<prefix>-00000``…), in time order."""
    base = [e for e in json.loads(EXAMPLE.read_text())["items"] if e["involvedObject"]["kind"].startswith("Virtual")]
    out = []
    for i in range(count):
        event = copy.deepcopy(base[i % len(base)])
        event["metadata"]["uid"] = f"{prefix}-{i:05d}"
        event["involvedObject"]["name"] = f"{event['involvedObject']['name']}-{i // len(base)}"
        out.append(event)
    return out


def requests_of(events: list[dict[str, Any]], size: int) -> list[ExportLogsServiceRequest]:
    return list(batches(events, size))


def uids(request: ExportLogsServiceRequest) -> list[str]:
    return [
        kv.value.string_value
        for r in request.resource_logs
        for s in r.scope_logs
        for rec in s.log_records
        for kv in rec.attributes
        if kv.key == "k8s.event.uid"
    ]


def stored(sink: LokiSink) -> Counter[str]:
    """How many times each record uid is stored in the sink."""
    return Counter(e.metadata.get("k8s_event_uid", "") for e in list(sink.entries))


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll until ``condition`` holds (a wait for the system under test, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@dataclass
class Collector:
    """Sends like the collector's ``otlp_grpc`` exporter: retries what it retries, drops the rest.

    Waits are shortened (the RetryInfo delay is recorded, not slept), attempts are bounded.
    """

    address: str
    max_attempts: int = 500
    acknowledged: list[str] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    delays: list[float] = field(default_factory=list)
    #: Set to make ``send_all`` give up (the collector process going away).
    stopped: threading.Event = field(default_factory=threading.Event)

    def send(self, request: ExportLogsServiceRequest, timeout: float = 10.0) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = LogsServiceStub(channel)
            for _ in range(self.max_attempts):
                if self.stopped.is_set():
                    return
                try:
                    stub.Export(request, timeout=timeout, compression=grpc.Compression.Gzip, wait_for_ready=True)
                except grpc.RpcError as error:
                    if not isinstance(error, grpc.Call):
                        raise
                    code = error.code()
                    self.refusals[code.name] += 1
                    delay = retry_delay(error)
                    if code not in RETRIED and not (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
                        raise
                    if delay is not None:
                        self.delays.append(delay)
                    time.sleep(0.02)
                    continue
                self.acknowledged.extend(uids(request))
                return
        raise AssertionError(f"not acknowledged after {self.max_attempts} attempts: {self.refusals}")

    def send_all(self, requests: Iterable[ExportLogsServiceRequest]) -> None:
        for request in requests:
            if self.stopped.is_set():
                return
            self.send(request)
