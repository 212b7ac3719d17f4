"""otelkv's import graph, read from the source with :mod:`ast` (every import counts, a lazy one
inside a function too: it is still a dependency), and the rules it must keep.

:data:`LAYERS` is the one place the layer order is written: each entry may import the entries
below it and never one above; a package's modules may import each other, without a circle.
docs/architecture.md shows the same table (a test compares them).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: Top to bottom. A module belongs to the longest entry that prefixes its name.
LAYERS: Final = (
    "otelkv.__main__",
    "otelkv.commands",
    "otelkv.server",
    "otelkv.receive",
    "otelkv.pipeline",
    "otelkv.delivery",
    "otelkv.forward",
    "otelkv.telemetry",
    "otelkv.otlp",
    "otelkv.kubevirt",
    "otelkv.config",
    "otelkv.textfile",
    "otelkv.errors",
    "otelkv",
)


@dataclass(frozen=True, slots=True)
class Edge:
    """``importer`` imports ``imported`` (both modules of the tree), at ``line``."""

    importer: str
    imported: str
    line: int


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root`` (a package is named by its ``__init__``)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def edges(found: Mapping[str, Path]) -> list[Edge]:
    """The imports between the modules in ``found``; ``from P import m`` names the module ``P.m``
    when there is one, else ``P``."""
    result = []
    for name, path in found.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(name, is_package, node.module, node.level)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in found else base for a in node.names]
            for written in targets:
                target = written
                while target and target not in found:  # `import a.b.c` depends on the module a.b.c
                    target = target.rpartition(".")[0]
                if target and target != name and isinstance(node, ast.Import | ast.ImportFrom):
                    result.append(Edge(name, target, node.lineno))
    return result


def _absolute(importer: str, is_package: bool, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def layer_of(module: str, layers: Iterable[str] = LAYERS) -> int:
    """The index of ``module``'s layer (0 is the top)."""
    ordered = list(layers)
    best = max((entry for entry in ordered if module == entry or module.startswith(entry + ".")), key=len)
    return ordered.index(best)


def upward(found_edges: Iterable[Edge], layers: Iterable[str] = LAYERS) -> list[str]:
    """Each import of a layer above the importer's, as ``importer:line -> imported``."""
    ordered = list(layers)
    return [
        f"{e.importer}:{e.line} -> {e.imported}"
        for e in found_edges
        if layer_of(e.imported, ordered) < layer_of(e.importer, ordered)
    ]


def circles(found_edges: Iterable[Edge]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in found_edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups
