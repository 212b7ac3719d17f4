"""Read recorded Kubernetes Events: ``kubectl get events -o json`` or ``-o yaml`` output, or JSON lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

import yaml

from otelkv.errors import UserError
from otelkv.kubevirt import parse_k8s_event
from otelkv.textfile import read_text

_NAME_NANOS: Final = re.compile(r"\.([0-9a-f]{12,16})$")
#: The most JSON or YAML values a file may hold, counted before parsing as its ``[``, ``{``, ``,``
#: and line breaks (an upper bound of the values in JSON, JSON lines and block-style YAML): a file
#: of tiny values (``[[],[],…]``) then stays within a few hundred MiB once decoded. kubectl's
#: output has one every ~20 bytes: ~200 MiB of events.
MAX_VALUES: Final = 10_000_000


class EventFileError(UserError, ValueError):
    """The input is not a list of Kubernetes Events; the message says where."""


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML that keeps timestamps as the strings kubectl printed (as JSON would), and refuses
    aliases: kubectl never writes them, and a few nested ones expand to billions of nodes."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not kubectl output", mark)
        return super().compose_node(parent, index)


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

EXPECTED: Final = (
    "expected Kubernetes Events: `kubectl get events -A -o json` (or -o yaml) output, a JSON array, or one Event a line"
)


def parse_events(text: str, source: str = "input") -> list[dict[str, Any]]:
    """Every Event in ``text`` (see :func:`_parse_events`); an integer of more digits than Python
    converts (4,300) is an :class:`EventFileError` too, not a crash."""
    try:
        return _parse_events(text, source)
    except EventFileError:
        raise
    except ValueError as error:
        raise EventFileError(f"{source}: {str(error).split(':')[0].lower()}; {EXPECTED}") from None


def _parse_events(text: str, source: str = "input") -> list[dict[str, Any]]:
    """Every Event in ``text``: a ``List`` (``{"items": [...]}``) or a JSON array, as JSON or
    YAML, or JSON lines. Anything else raises :class:`EventFileError` naming ``source``."""
    stripped = text.lstrip()
    if not stripped:
        raise EventFileError(f"{source}: empty; {EXPECTED}")
    values = sum(text.count(c) for c in "[{,\n")
    if values > MAX_VALUES:
        raise EventFileError(
            f"{source}: more than {MAX_VALUES} JSON/YAML values (counted as [, {{, commas and lines: {values}); "
            "otelkv's limit: give a shorter file"
        )
    try:  # one document (a List, an array, one Event), parsed once
        return _items(json.loads(stripped), source)
    except json.JSONDecodeError as whole:
        if whole.pos >= len(stripped.rstrip()):  # the text ends before the document does
            raise EventFileError(
                f"{source}: cut short: the JSON ends at line {whole.lineno} column {whole.colno} before its "
                f"document does ({whole.msg.lower()}); {EXPECTED}"
            ) from None
        if stripped[0] == "[":
            raise EventFileError(f"{source}: not JSON: {whole}") from whole
        if stripped[0] != "{":
            return _yaml(stripped, source)
    except RecursionError:
        raise EventFileError(f"{source}: nested too deeply; {EXPECTED}") from None
    events: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                events.extend(_items(json.loads(line), f"{source}:{number}"))
            except json.JSONDecodeError as error:
                raise EventFileError(f"{source}:{number}: not JSON or JSON lines: {error}") from error
            except RecursionError:
                raise EventFileError(f"{source}:{number}: nested too deeply") from None
    return events


def _yaml(text: str, source: str) -> list[dict[str, Any]]:
    try:
        documents = [d for d in yaml.load_all(text, Loader=_YamlLoader) if d is not None]  # a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or "not YAML"
        raise EventFileError(f"{where}: neither JSON nor YAML ({problem}); {EXPECTED}") from None
    except RecursionError:
        raise EventFileError(f"{source}: nested too deeply; {EXPECTED}") from None
    events: list[dict[str, Any]] = []
    for document in documents:
        events.extend(_items(document, source))
    return events


def _items(data: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise EventFileError(f"{where}: {EXPECTED}")
    if data and not any(key in item for item in data for key in _EVENT_KEYS):
        raise EventFileError(f"{where}: no Kubernetes Events in it (no involvedObject or regarding); {EXPECTED}")
    return data


#: Keys every Event has in one of its shapes (core/v1, events.k8s.io/v1, a watch event).
_EVENT_KEYS: Final = ("involvedObject", "regarding", "object", "reason", "k8s.event.reason", "k8s.object.kind")


def in_time_order(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events sorted by when they (last) happened, as a watch would have delivered them.

    The API lists events by name, not by time. Within one second, the name's suffix — client-go
    names an event ``<object>.<UnixNano in hex>`` — orders events of different objects.
    """

    def key(event: dict[str, Any]) -> tuple[datetime | None, int]:
        try:
            when = parse_k8s_event(event).timestamp
        except (TypeError, ValueError):
            when = None
        metadata = event.get("metadata")
        name = metadata.get("name", "") if isinstance(metadata, dict) else ""
        found = _NAME_NANOS.search(name) if isinstance(name, str) else None
        return when, int(found.group(1), 16) if found else 0

    keyed = [(key(e), i, e) for i, e in enumerate(events)]
    timed = sorted((k for k in keyed if k[0][0] is not None), key=lambda k: (k[0][0], k[0][1], k[1]))
    untimed = [k for k in keyed if k[0][0] is None]
    return [e for _, _, e in timed + untimed]


def source_name(path: str) -> str:
    """How ``path`` is named in messages: ``stdin`` for ``-``."""
    return "stdin" if path == "-" else path


def read_event_file(path: str) -> list[dict[str, Any]]:
    """The Events in a file (or stdin), in time order; EventFileError/TextError/OSError naming it."""
    return in_time_order(parse_events(read_text(path), source_name(path)))
