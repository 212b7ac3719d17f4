"""JSON logs, one object a line, on stderr (stdout may carry the enriched records).

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


def setup(level: str) -> None:
    """Send otelkv's logs (and the libraries') as JSON to stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
