"""YAML as a configuration reads it: safe types only, and a key given twice is an error.

PyYAML keeps the last of two equal keys in a mapping without a word, so a second ``forward:``
further down a long file silently replaces the first. The Collector refuses such a file (its
koanf/yaml.v3 loader: "mapping key already defined"); otelkv does the same. Keys a merge
(``<<: *base``) brings in may be overridden: that is what merging is for.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode

__all__ = ["DuplicateKey", "load_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKey(yaml.MarkedYAMLError):
    """A mapping names the same key twice (``problem_mark``: the second one)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:
                continue  # an unhashable key: SafeConstructor's own error names it
            if earlier is not key_node:
                raise DuplicateKey(
                    problem=f"key {key!r} given twice (first on line {earlier.start_mark.line + 1})",
                    problem_mark=key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """The data in ``text`` (safe types); :class:`yaml.YAMLError` (a :class:`DuplicateKey` among them)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe types only
