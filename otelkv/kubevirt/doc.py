"""Write the decision table into ``docs/parsing.md`` (between its GENERATED markers).

``python -m otelkv.kubevirt.doc docs/parsing.md`` rewrites the table; ``--check`` only says
whether it is current (exit 1 if not). The tests run the check, so the doc cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

from .rules import FROM_MESSAGE, RULES, Rule

BEGIN: Final = "<!-- BEGIN GENERATED: decision table (python -m otelkv.kubevirt.doc) -->"
END: Final = "<!-- END GENERATED -->"

_HOST: Final = {"source": "source", "target": "target", "migrated": "source ≤ v1.5, target ≥ v1.6", None: ""}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _failure(rule: Rule) -> str:
    if rule.failure == FROM_MESSAGE:
        return "the message"
    if rule.failure is not None:
        return f"`{rule.failure}`"
    return "the `reason:` text" if "failure_reason" in rule.args else ""


def _versions(rule: Rule) -> str:
    return f"{rule.since} to {rule.until}" if rule.until else f"since {rule.since}"


def render_table() -> str:
    """The decision table as a Markdown table, one row per rule, in matching order."""
    lines = [
        "| reason | object | type | message format | phase after | host is | one attempt | failure reason "
        "| versions | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        kind = "VMIM" if rule.kind.endswith("Migration") else "VMI"
        cells = [
            f"`{rule.reason}`" if rule.reason else "*(error text)*",
            kind,
            rule.type,
            f"`{_cell(rule.format)}`",
            rule.phase,
            _HOST[rule.host],
            "yes" if rule.attempt else "no",
            _failure(rule),
            _versions(rule),
            _cell(rule.note),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rewrite(text: str) -> str:
    """``text`` with the part between the markers replaced by the current table."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"markers not found: {BEGIN!r} … {END!r}")
    return f"{head}{BEGIN}\n{render_table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    """Rewrite (or with ``--check``, verify) the table in the given Markdown file."""
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    if len(paths) != 1:
        print("usage: python -m otelkv.kubevirt.doc [--check] docs/parsing.md", file=sys.stderr)
        return 2
    path = Path(paths[0])
    current = path.read_text()
    wanted = rewrite(current)
    if check:
        if wanted != current:
            print(f"{path}: decision table is out of date; run make docs", file=sys.stderr)
            return 1
        return 0
    path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
