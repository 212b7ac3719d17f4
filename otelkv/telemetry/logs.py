"""Logs on stderr (stdout may carry the enriched records): JSON, one object a line, or the same
fields as a console line (the Collector's ``encoding: console``) — console on a terminal, JSON
otherwise, unless ``log_format`` says.

The keys are the OpenTelemetry Collector's (zap's JSON encoder) where they overlap — ``ts``
(RFC 3339, UTC, milliseconds), ``level``, ``caller``, ``msg`` — so one parser or Loki query reads
the collector's and otelkv's logs alike; then ``logger``, any ``extra`` fields, and ``error`` and
``stacktrace`` for an exception (zap's names too). ``level`` keeps Python's words (``warning``, not
zap's ``warn``): they are the values ``log_level`` and ``--log-level`` take.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_PACKAGE = Path(__file__).resolve().parent.parent.parent  # the directory that holds otelkv/


def _caller(record: logging.LogRecord) -> str:
    """``otelkv/forward/http.py:50`` inside otelkv, else ``dir/file.py:line`` (as zap trims it)."""
    return f"{_shown(record.pathname)}:{record.lineno}"


@lru_cache(maxsize=512)  # one entry a source file: no filesystem call per log line
def _shown(pathname: str) -> str:
    path = Path(pathname)
    try:
        return path.resolve().relative_to(_PACKAGE).as_posix()
    except ValueError:
        return f"{path.parent.name}/{path.name}"


class JsonFormatter(logging.Formatter):
    """ts, level, caller, msg, logger, any ``extra`` fields, and the exception if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "caller": _caller(record),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            kind, error, _ = record.exc_info
            data["error"] = f"{kind.__name__ if kind else 'Exception'}: {error}"
            data["stacktrace"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class ConsoleFormatter(JsonFormatter):
    """The same fields as :class:`JsonFormatter`, as zap's console encoder writes them: ts, level,
    caller and msg separated by tabs, then the other fields as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        data = json.loads(super().format(record))
        head = "\t".join(str(data.pop(key)) for key in ("ts", "level", "caller", "msg"))
        data.pop("logger", None)
        stack = data.pop("stacktrace", None)
        line = f"{head}\t{json.dumps(data, default=str)}" if data else head
        return f"{line}\n{stack}" if stack else line


def setup(level: str, log_format: str | None = None) -> None:
    """Send otelkv's logs (and the libraries') to stderr at ``level``: ``console`` or ``json``
    (None: console on a terminal, JSON otherwise, as the Collector chooses its encoding)."""
    handler = logging.StreamHandler(sys.stderr)
    console = sys.stderr.isatty() if log_format is None else log_format == "console"
    handler.setFormatter(ConsoleFormatter() if console else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
