"""Loki's answer to ``query_range`` read into entries (../shared/FACTS.md §3b): a ``streams``
result in either encoding — labels merged into each stream, or with ``categorize-labels`` a third
element per value holding ``structuredMetadata`` and ``parsed`` — each entry's labels bounded."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["CATEGORIZE", "MAX_ENTRY_LABELS", "BadTimestamp", "LokiEntry", "TooManyLabels", "read_answer"]

#: The encoding flag that keeps structured metadata and parsed labels apart from the stream's.
CATEGORIZE: Final = "categorize-labels"
#: Labels and metadata one entry may carry (Loki's own defaults allow 15 labels and 128 metadata;
#: a full page of entries this large still takes tens of MiB, not gigabytes).
MAX_ENTRY_LABELS: Final = 256
#: Loki's timestamps are int64 nanoseconds since the epoch.
_MAX_NS: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class LokiEntry:
    """One log entry: its time (ns), its line, and its index labels, structured metadata and
    parsed labels in one mapping (the names as Loki writes them: ``kubevirt_vm_name``)."""

    time_ns: int
    line: str
    labels: Mapping[str, str]

    def key(self) -> tuple[int, str, frozenset[tuple[str, str]]]:
        """What tells two entries apart (Loki itself answers one for identical ones)."""
        return self.time_ns, self.line, frozenset(self.labels.items())


class TooManyLabels(ValueError):
    """An entry carries more than :data:`MAX_ENTRY_LABELS` labels and metadata."""


class BadTimestamp(ValueError):
    """A value's timestamp is not decimal nanoseconds in Loki's int64 range."""


def _labels(values: Mapping[Any, Any], into: dict[str, str] | None = None) -> dict[str, str]:
    merged = {} if into is None else into
    merged.update({str(k): str(v) for k, v in values.items()})
    if len(merged) > MAX_ENTRY_LABELS:
        raise TooManyLabels
    return merged


def _ns_of(text: Any) -> int:
    """A value's timestamp: decimal nanoseconds in Loki's int64 range; ValueError otherwise."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 19:
        raise BadTimestamp(text)
    ns = int(text)
    if ns > _MAX_NS:
        raise BadTimestamp(text)
    return ns


def read_answer(answer: Any) -> Iterator[LokiEntry]:
    """The entries of a ``streams`` answer, in either encoding."""
    if answer["status"] != "success":
        raise ValueError(answer["status"])
    data = answer["data"]
    if data["resultType"] != "streams":
        raise ValueError(data["resultType"])
    categorized = CATEGORIZE in (data.get("encodingFlags") or ())
    for stream in data["result"]:
        labels = _labels(stream["stream"])
        for value in stream["values"]:
            merged = labels
            if categorized and len(value) > 2 and value[2]:
                merged = dict(labels)
                for part in ("structuredMetadata", "parsed"):
                    _labels(value[2].get(part) or {}, merged)
            yield LokiEntry(_ns_of(value[0]), str(value[1]), merged)
