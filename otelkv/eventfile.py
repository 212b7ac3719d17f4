"""Read recorded Kubernetes Events: ``kubectl get events -o json`` output or JSON lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any, Final

from otelkv.kubevirt import parse_k8s_event

_NAME_NANOS: Final = re.compile(r"\.([0-9a-f]{12,16})$")


class EventFileError(ValueError):
    """The input is not a list of Kubernetes Events; the message says where."""


def read_events(stream: IO[str], source: str = "input") -> list[dict[str, Any]]:
    """Every Event in ``stream``: a ``List`` (``{"items": [...]}``), a JSON array, or JSON lines."""
    text = stream.read()
    stripped = text.lstrip()
    if not stripped:
        return []
    try:  # one document (a List, an array, one Event), parsed once
        return _items(json.loads(stripped), source)
    except json.JSONDecodeError as whole:
        if stripped[0] == "[":
            raise EventFileError(f"{source}: not JSON: {whole}") from whole
    events: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                events.extend(_items(json.loads(line), f"{source}:{number}"))
            except json.JSONDecodeError as error:
                raise EventFileError(f"{source}:{number}: not JSON or JSON lines: {error}") from error
    return events


def _items(data: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise EventFileError(f"{where}: expected Events (a List, an array or one object a line)")
    return data


def in_time_order(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events sorted by when they (last) happened, as a watch would have delivered them.

    The API lists events by name, not by time. Within one second, the name's suffix — client-go
    names an event ``<object>.<UnixNano in hex>`` — orders events of different objects.
    """

    def key(event: dict[str, Any]) -> tuple[datetime | None, int]:
        try:
            when = parse_k8s_event(event).timestamp
        except TypeError:
            when = None
        name = (event.get("metadata") or {}).get("name", "")
        found = _NAME_NANOS.search(name) if isinstance(name, str) else None
        return when, int(found.group(1), 16) if found else 0

    keyed = [(key(e), i, e) for i, e in enumerate(events)]
    timed = sorted((k for k in keyed if k[0][0] is not None), key=lambda k: (k[0][0], k[0][1], k[1]))
    untimed = [k for k in keyed if k[0][0] is None]
    return [e for _, _, e in timed + untimed]
