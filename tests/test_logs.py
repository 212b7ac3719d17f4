"""otelkv's JSON logs use the Collector's (zap's) keys where they overlap."""

from __future__ import annotations

import json
import logging
import re
import sys

from otelkv.telemetry.logs import JsonFormatter


def _line(record: logging.LogRecord) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(JsonFormatter().format(record))
    return loaded


def test_the_keys_are_zaps_ts_level_caller_msg() -> None:
    logger = logging.getLogger("otelkv.server")
    record = logger.makeRecord(
        "otelkv.server",
        logging.WARNING,
        "/x/otelkv/server.py",
        85,
        "forward failed: %s",
        ("HTTP 401",),
        None,
        extra={"target": "http://loki/otlp/v1/logs"},
    )
    line = _line(record)
    assert list(line)[:5] == ["ts", "level", "caller", "msg", "logger"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(line["ts"]))
    assert line["level"] == "warning" and line["msg"] == "forward failed: HTTP 401"
    assert line["caller"] == "otelkv/server.py:85" and line["target"] == "http://loki/otlp/v1/logs"


def test_a_caller_inside_the_package_is_shown_from_it() -> None:
    import otelkv.forward.http as module  # noqa: PLC0415

    record = logging.LogRecord("otelkv.forward.http", logging.INFO, module.__file__ or "", 50, "m", (), None)
    assert _line(record)["caller"] == "otelkv/forward/http.py:50"


def test_an_exception_is_error_and_stacktrace() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("t").makeRecord("t", logging.ERROR, "f.py", 1, "failed", (), sys.exc_info())
    line = _line(record)
    assert line["error"] == "ValueError: boom" and "Traceback" in str(line["stacktrace"])
