"""otelkv's JSON logs use the Collector's (zap's) keys where they overlap."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

import pytest

from otelkv.telemetry import logs
from otelkv.telemetry.logs import ConsoleFormatter, JsonFormatter


def _line(record: logging.LogRecord) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(JsonFormatter().format(record))
    return loaded


def _forward_failed() -> logging.LogRecord:
    """A warning as otelkv.server logs one, with an ``extra`` field."""
    return logging.getLogger("otelkv.server").makeRecord(
        "otelkv.server",
        logging.WARNING,
        "/x/otelkv/server.py",
        85,
        "forward failed: %s",
        ("HTTP 401",),
        None,
        extra={"target": "http://loki/otlp/v1/logs"},
    )


def test_the_keys_are_zaps_ts_level_caller_msg() -> None:
    record = _forward_failed()
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


def test_console_lines_carry_the_same_fields_as_json() -> None:
    """Issue 20 item 10: the Collector's console encoding on a terminal, the same keys."""
    record = _forward_failed()
    as_json = json.loads(JsonFormatter().format(record))
    ts, level, caller, msg, rest = ConsoleFormatter().format(record).split("\t")
    assert (ts, level, caller, msg) == (as_json["ts"], "warning", "otelkv/server.py:85", "forward failed: HTTP 401")
    assert json.loads(rest) == {"target": "http://loki/otlp/v1/logs"}


def test_log_format_is_chosen_by_the_terminal_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    saved = logging.getLogger().handlers[:]
    try:
        monkeypatch.setattr(sys, "stderr", Terminal())
        logs.setup("info")
        assert isinstance(logging.getLogger().handlers[0].formatter, ConsoleFormatter)
        logs.setup("info", "json")
        assert type(logging.getLogger().handlers[0].formatter) is JsonFormatter
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        logs.setup("info")
        assert type(logging.getLogger().handlers[0].formatter) is JsonFormatter
    finally:
        logging.getLogger().handlers[:] = saved
