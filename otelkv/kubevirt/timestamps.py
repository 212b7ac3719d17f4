"""Reading the timestamps Kubernetes and the collector write, without ever raising on text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

# Go's time.Time.String(): "2026-01-02 15:04:05.123456789 +0000 UTC" (the collector's
# k8s.event.start_time), in the collector's local zone ("+0100 CET", "+0530 IST", "-0330 -0330")
# and, for a time read from the monotonic clock, with " m=+0.0123" after it. Fractions beyond
# microseconds are dropped.
_GO_TIME: Final = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))? "
    r"(?P<offset>[+-]\d{4})(?: [^\s=]+)?(?: m=[+-]\d+(?:\.\d+)?)?"
)


def parse_time(value: str) -> datetime | None:
    """An RFC 3339 string or a Go ``time.Time`` string as an aware datetime; None otherwise."""
    text = value.strip()
    go = _GO_TIME.fullmatch(text)
    if go:
        frac = (go["frac"] or "")[:6].ljust(6, "0")
        text = f"{go['date']}T{go['time']}.{frac}{go['offset']}"
    elif "T" not in text[:11].upper():
        return None  # RFC 3339 needs the date-time separator; ISO 8601 week dates etc. are not it
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.year <= 1:
        return None  # naive, or Go's zero time "0001-01-01 00:00:00 +0000 UTC": unset
    return parsed


def from_unix_nanos(nanos: int) -> datetime | None:
    """OTLP's ``time_unix_nano`` as an aware datetime; 0 means unset."""
    if nanos <= 0:
        return None
    seconds, rest = divmod(nanos, 1_000_000_000)
    days, seconds = divmod(seconds, 86_400)
    try:  # one timedelta of small parts and one addition: the same instant as fromtimestamp, in UTC, cheaper
        return _EPOCH + timedelta(days, seconds, rest // 1000)
    except OverflowError:
        return None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
