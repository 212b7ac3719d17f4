"""The tracker's records as JSON-ready data and back (the file I/O is the caller's)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Final

from .record import OBJECT_FACTS, SILENT, Record

VERSION: Final = 1
_TIMES: Final = ("first_seen", "started", "terminal_at", "first_end", "obj_start", "obj_end", "touched")
_TEXTS: Final = (
    "cluster",
    "namespace",
    "vm",
    "name",
    "uid",
    "phase",
    "source",
    "target",
    "pod",
    "failure",
    "mode",
    "abort",
    "trigger",
)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(f"{where}: not an ISO time with zone: {value!r}")
    return parsed


def _to_key(value: Any) -> Any:
    """A duplicate-filter key as JSON (tuples as lists); an owner that has no key cannot be saved."""
    if isinstance(value, tuple):
        return [_to_key(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return "silent"  # SILENT, or a record without a key: after a restart it is owed no summary again


def _from_key(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_key(v) for v in value)
    return SILENT if value == "silent" else value


def _to_data(record: Record) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(record, name) for name in _TEXTS}
    data.update({name: _iso(getattr(record, name)) for name in _TIMES})
    data.update(events=record.events, fixed=sorted(record.fixed), concluded_by=_to_key(record.concluded_by))
    return data


def _from_data(data: Any, key: int, where: str) -> Record:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: must be a mapping")
    record = Record(key, None)
    for name in _TEXTS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}.{name}: must be a string")
        setattr(record, name, value)
    for name in _TIMES:
        setattr(record, name, _time(data.get(name), f"{where}.{name}"))
    if "first_end" not in data:  # saved before otelkv kept the earliest end: the latest is what it has
        record.first_end = record.terminal_at
    events, fixed = data.get("events", 0), data.get("fixed", [])
    if isinstance(events, bool) or not isinstance(events, int) or not isinstance(fixed, list):
        raise ValueError(f"{where}: events must be an int and fixed a list")
    record.events, record.fixed = events, {f for f in fixed if f in OBJECT_FACTS}
    concluded = data.get("concluded_by")
    record.concluded_by = None if concluded is None else _from_key(concluded)
    return record


def dump(records: Iterable[Record], now: datetime | None) -> dict[str, Any]:
    """``records`` (least recently seen first) and the tracker's clock as data."""
    return {"version": VERSION, "now": _iso(now), "migrations": [_to_data(r) for r in records]}


def load(state: Any, keys: Iterator[int]) -> tuple[list[Record], datetime | None]:
    """The records and clock :func:`dump` wrote; ValueError naming the first problem."""
    if not isinstance(state, Mapping) or state.get("version") != VERSION:
        raise ValueError(f"not a tracker state of version {VERSION}")
    items = state.get("migrations")
    if not isinstance(items, list):
        raise ValueError("migrations: must be a list")
    records = [_from_data(item, next(keys), f"migrations[{i}]") for i, item in enumerate(items)]
    return records, _time(state.get("now"), "now")
