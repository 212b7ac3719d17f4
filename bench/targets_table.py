"""The figures of one ``bench/bench.py`` run, against issue 24's targets, as the table of
docs/performance.md ("The targets, as measured").

Each phase of the bench notes what it measured (:func:`note`); ``bench/bench.py --write-docs``
(``make bench``) then replaces the table between :data:`BEGIN` and :data:`END` in
docs/performance.md with :func:`table`: every figure beside its floor or its limit, the target,
and whether it is met. A measure the run did not reach (a phase skipped, no compiled core) shows
as "not measured", never as an old figure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

BEGIN: Final = "<!-- bench/targets_table.py: begin -->"
END: Final = "<!-- bench/targets_table.py: end -->"

#: What this run measured, by name (:data:`MEASURES` says which names a row reads).
FIGURES: dict[str, float] = {}


def note(name: str, value: float) -> None:
    """Keep ``value`` as this run's figure ``name`` (the last one noted wins)."""
    FIGURES[name] = float(value)


@dataclass(frozen=True, slots=True)
class Measure:
    """One row: how to show the figures, the target, and whether the figures meet it."""

    what: str
    needs: tuple[str, ...]
    shown: Callable[[Mapping[str, float]], str]
    target: str
    met: Callable[[Mapping[str, float]], bool]


def _ratio(path: str) -> Callable[[Mapping[str, float]], str]:
    return lambda f: f"{f['floor'] / f[path]:.1f}x ({f[path]:,.0f} records/s; floor {f['floor']:,.0f})"


def _cpu(size: str) -> Callable[[Mapping[str, float]], str]:
    return lambda f: f"{f[f'cpu_{size}']:.1f}% at {f[f'cpu_{size}_rate']:,.0f} records/s"


MEASURES: Final = (
    Measure(
        "enrichment, native core",
        ("floor", "native"),
        _ratio("native"),
        "≤ 8x",
        lambda f: f["floor"] / f["native"] <= 8,
    ),
    Measure(
        "enrichment, pure Python (`OTELKV_NO_EXTENSIONS=1`)",
        ("floor", "python"),
        _ratio("python"),
        "≤ 20x",
        lambda f: f["floor"] / f["python"] <= 20,
    ),
    Measure(
        "CPU of one core at 10,000 records/s, 1,000 per request (native)",
        ("cpu_1000", "cpu_1000_rate"),
        _cpu("1000"),
        "≤ 30%",
        lambda f: f["cpu_1000"] <= 30,
    ),
    Measure(
        "CPU of one core at 10,000 records/s, 100 per request (native)",
        ("cpu_100", "cpu_100_rate"),
        _cpu("100"),
        "≤ 40%",
        lambda f: f["cpu_100"] <= 40,
    ),
    Measure(
        "idle RSS, sidecar configuration (total / anonymous)",
        ("idle_rss", "idle_anon"),
        lambda f: f"{f['idle_rss']:.1f} / {f['idle_anon']:.1f} MiB",
        "≤ 45 / ≤ 22 MiB",
        lambda f: f["idle_rss"] <= 45 and f["idle_anon"] <= 22,
    ),
    Measure(
        "peak RSS, hostile mix, native core",
        ("hostile_native",),
        lambda f: f"{f['hostile_native']:.0f} MiB of the 192 Mi limit",
        "≤ 150 MiB",
        lambda f: f["hostile_native"] <= 150,
    ),
    Measure(
        "peak RSS, hostile mix, pure Python",
        ("hostile_python",),
        lambda f: f"{f['hostile_python']:.0f} MiB of the 192 Mi limit",
        "≤ 150 MiB",
        lambda f: f["hostile_python"] <= 150,
    ),
    Measure(
        "pass-through (Pod events), native core",
        ("passthrough_floor", "passthrough"),
        lambda f: (
            f"{f['passthrough_floor'] / f['passthrough']:.2f}x "
            f"({f['passthrough']:,.0f} records/s; floor {f['passthrough_floor']:,.0f})"
        ),
        "≤ 1.3x",
        lambda f: f["passthrough_floor"] / f["passthrough"] <= 1.3,
    ),
)


def table(figures: Mapping[str, float], when: str) -> str:
    """The Markdown table of :data:`MEASURES` for ``figures``, headed by the run's date ``when``."""
    rows = [f"`make bench`, {when}:", "", "| measure | this run | target | |", "|---|---|---|---|"]
    for measure in MEASURES:
        if all(name in figures for name in measure.needs):
            verdict = "met" if measure.met(figures) else "**not met**"
            rows.append(f"| {measure.what} | {measure.shown(figures)} | {measure.target} | {verdict} |")
        else:
            rows.append(f"| {measure.what} | not measured | {measure.target} | |")
    return "\n".join(rows)


def write(doc: Path, figures: Mapping[str, float], when: str) -> None:
    """Replace the table between :data:`BEGIN` and :data:`END` in ``doc`` (both must be there)."""
    text = doc.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{doc}: no {BEGIN} … {END} to replace")
    doc.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table(figures, when)}\n{END}", text, count=1))
