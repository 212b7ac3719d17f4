"""Enriched records as JSON lines on a stream: the embedded default target, no Loki needed."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.otlp.attributes import to_dict, value_of

from . import Delivery, Request, message


def record_lines(request: ExportLogsServiceRequest) -> list[dict[str, Any]]:
    """One dict a record: time, severity, body, resource and record attributes."""
    lines = []
    for resource_logs in request.resource_logs:
        resource = to_dict(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                lines.append(
                    {
                        "time": datetime.fromtimestamp(nanos / 1e9, UTC).isoformat() if nanos else None,
                        "severity": record.severity_text,
                        "body": value_of(record.body),
                        "resource": resource,
                        "attributes": to_dict(record.attributes),
                    }
                )
    return lines


class StdoutForwarder:
    """Writes each record as one JSON line; a write never fails the request."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        """Always ``stdout``."""
        return "stdout"

    def send(self, request: Request, *, timeout: float) -> Delivery:
        """Print the records of ``request``."""
        lines = record_lines(message(request))
        text = "".join(json.dumps(line, default=str, sort_keys=True) + "\n" for line in lines)
        with self._lock:
            stream = self._stream or sys.stdout
            stream.write(text)
            stream.flush()
        return Delivery()

    def close(self) -> None:
        """Nothing to release."""
