"""A small LogQL metric-query evaluator for the tests: enough of Loki's semantics to feed records
through the alert rules' and the dashboard's own expressions (the text in the files, parsed here)
and see what they answer at one instant.

Covered (what deploy/ uses): stream selectors and label filters (``= != =~ !~``, regexes fully
anchored as in Loki), line filters (``|= != |~ !~``), ``| unwrap`` with ``| __error__=""``,
the range aggregations ``count_over_time``, ``max_over_time``, ``min_over_time``,
``sum_over_time``, ``avg_over_time`` and ``quantile_over_time`` over ``(t - range - offset,
t - offset]`` (with ``by``/``without`` for the unwrapped ones), the vector aggregations ``sum``,
``max``, ``min``, ``count``, ``avg`` with ``by``/``without``, comparisons (filtering, or ``bool``),
arithmetic, ``and``/``or``/``unless`` with ``on``/``ignoring``, numbers and parentheses, in
Prometheus' precedence. A record is ``Record(ts, labels, line)``: its labels are the stream's
index labels and its structured metadata together, as a metric query sees them. A missing label
reads as ``""``. Anything else raises ``ValueError`` (never a silent wrong answer).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Labels = frozenset[tuple[str, str]]
Vector = dict[Labels, float]


@dataclass(frozen=True)
class Record:
    ts: float  # seconds
    labels: dict[str, str] = field(hash=False)
    line: str = ""


TOKEN = re.compile(
    r"""\s*(?:
    (?P<duration>\d+(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*(?![A-Za-z0-9_]))
    |(?P<number>\d+(?:\.\d+)?)
    |(?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
    |(?P<op>\|=|\|~|!=|!~|=~|==|>=|<=|[{}()\[\],|=<>+\-*/%^])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
RANGE_AGGS = {
    "count_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "avg_over_time",
    "quantile_over_time",
}
VECTOR_AGGS = {"sum", "max", "min", "count", "avg"}
# Prometheus' binary precedence, lowest first.
PRECEDENCE = [{"or"}, {"and", "unless"}, {"==", "!=", ">", "<", ">=", "<="}, {"+", "-"}, {"*", "/", "%"}]


def duration(text: str) -> float:
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


def tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read {text[pos : pos + 20]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def unquote(s: str) -> str:
    return s[1:-1] if s.startswith("`") else bytes(s[1:-1], "utf-8").decode("unicode_escape")


def label_match(op: str, value: str, wanted: str) -> bool:
    if op == "=":
        return value == wanted
    if op == "!=":
        return value != wanted
    if op == "=~":
        return re.fullmatch(wanted, value) is not None
    if op == "!~":
        return re.fullmatch(wanted, value) is None
    raise ValueError(op)


Stage = Callable[[dict[str, str], str], bool]


class Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokens(text)
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str]:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else ("eof", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, v = self.peek()
        if (value is not None and v != value) or (kind is not None and k != kind):
            raise ValueError(f"expected {value or kind}, got {v!r} at token {self.i}")
        self.i += 1
        return v

    def parse(self) -> Callable[[list[Record], float], Vector | float]:
        expr = self.binary(0)
        if self.peek()[0] != "eof":
            raise ValueError(f"unexpected {self.peek()[1]!r}")
        return expr

    # -- binary operators ---------------------------------------------------------------------
    def binary(self, level: int) -> Callable[[list[Record], float], Vector | float]:
        if level == len(PRECEDENCE):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[1] in PRECEDENCE[level]:
            op = self.take()
            is_bool = False
            if self.peek()[1] == "bool":
                self.take()
                is_bool = True
            matching: tuple[str, tuple[str, ...]] | None = None
            if self.peek()[1] in ("on", "ignoring"):
                kind = self.take()
                matching = (kind, self.label_list())
            right = self.binary(level + 1)
            left = binop(op, left, right, is_bool, matching)
        return left

    def label_list(self) -> tuple[str, ...]:
        self.take("(")
        names: list[str] = []
        while self.peek()[1] != ")":
            names.append(self.take(kind="ident"))
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return tuple(names)

    def unary(self) -> Callable[[list[Record], float], Vector | float]:
        kind, value = self.peek()
        if value == "(":
            self.take("(")
            inner = self.binary(0)
            self.take(")")
            return inner
        if kind == "number":
            self.take()
            number = float(value)
            return lambda records, t: number
        if value in RANGE_AGGS:
            return self.range_agg()
        if value in VECTOR_AGGS:
            return self.vector_agg()
        raise ValueError(f"unsupported {value!r}")

    # -- aggregations -------------------------------------------------------------------------
    def grouping(self) -> tuple[str, tuple[str, ...]] | None:
        if self.peek()[1] in ("by", "without"):
            kind = self.take()
            return kind, self.label_list()
        return None

    def vector_agg(self) -> Callable[[list[Record], float], Vector | float]:
        name = self.take()
        group = self.grouping()
        self.take("(")
        inner = self.binary(0)
        self.take(")")
        group = group or self.grouping()

        def run(records: list[Record], t: float) -> Vector:
            vector = inner(records, t)
            if not isinstance(vector, dict):
                raise ValueError(f"{name} of a scalar")
            buckets: dict[Labels, list[float]] = {}
            for labels, v in vector.items():
                buckets.setdefault(regroup(labels, group), []).append(v)
            return {k: FOLDS[name](vs) for k, vs in buckets.items()}

        return run

    def range_agg(self) -> Callable[[list[Record], float], Vector | float]:
        name = self.take()
        self.take("(")
        q = None
        if name == "quantile_over_time":
            q = float(self.take(kind="number"))
            self.take(",")
        selector = self.selector()
        stages, unwrap = self.pipeline()
        self.take("[")
        window = duration(self.take(kind="duration"))
        self.take("]")
        offset = 0.0
        if self.peek()[1] == "offset":
            self.take()
            offset = duration(self.take(kind="duration"))
        self.take(")")
        group = self.grouping()
        if (unwrap is None) != (name == "count_over_time"):
            raise ValueError(f"{name} {'needs' if unwrap is None else 'takes no'} unwrap")
        if group and unwrap is None:
            raise ValueError("Loki refuses a grouping on a range aggregation without unwrap")

        def run(records: list[Record], t: float) -> Vector:
            end = t - offset
            series: dict[Labels, list[float]] = {}
            for r in records:
                if not end - window < r.ts <= end:
                    continue
                if not all(label_match(op, r.labels.get(k, ""), v) for k, op, v in selector):
                    continue
                if not all(stage(r.labels, r.line) for stage in stages):
                    continue
                labels = dict(r.labels)
                if unwrap is None:
                    series.setdefault(frozenset(labels.items()), []).append(1.0)
                    continue
                try:
                    value = float(labels.pop(unwrap, ""))
                except ValueError:
                    continue  # Loki marks it __error__; the rules drop those with __error__=""
                series.setdefault(regroup(frozenset(labels.items()), group), []).append(value)
            return {k: over_time(name, q, vs) for k, vs in series.items()}

        return run

    # -- log selection --------------------------------------------------------------------------
    def selector(self) -> list[tuple[str, str, str]]:
        self.take("{")
        matchers = []
        while self.peek()[1] != "}":
            name = self.take(kind="ident")
            op = self.take()
            matchers.append((name, op, unquote(self.take(kind="string"))))
            if self.peek()[1] == ",":
                self.take(",")
        self.take("}")
        return matchers

    def pipeline(self) -> tuple[list[Stage], str | None]:
        stages: list[Stage] = []
        unwrap = None
        while self.peek()[1] in ("|", "|=", "|~", "!=", "!~"):
            op = self.take()
            if op != "|":
                needle = unquote(self.take(kind="string"))
                stages.append(line_filter(op, needle))
                continue
            name = self.take(kind="ident")
            if name == "unwrap":
                unwrap = self.take(kind="ident")
                continue
            cmp = self.take()
            wanted = unquote(self.take(kind="string"))
            if name == "__error__":
                if (cmp, wanted) != ("=", ""):
                    raise ValueError('only __error__="" is covered')
                continue
            stages.append(label_filter(name, cmp, wanted))
        return stages, unwrap


def label_filter(name: str, op: str, wanted: str) -> Stage:
    return lambda labels, line: label_match(op, labels.get(name, ""), wanted)


def line_filter(op: str, needle: str) -> Stage:
    if op == "|=":
        return lambda labels, line: needle in line
    if op == "!=":
        return lambda labels, line: needle not in line
    if op == "|~":
        return lambda labels, line: re.search(needle, line) is not None
    return lambda labels, line: re.search(needle, line) is None


def regroup(labels: Labels, group: tuple[str, tuple[str, ...]] | None) -> Labels:
    if group is None:
        return frozenset()
    kind, names = group
    if kind == "by":
        return frozenset((k, v) for k, v in labels if k in names)
    return frozenset((k, v) for k, v in labels if k not in names)


def over_time(name: str, q: float | None, values: list[float]) -> float:
    if name == "count_over_time":
        return float(len(values))
    if name == "max_over_time":
        return max(values)
    if name == "min_over_time":
        return min(values)
    if name == "sum_over_time":
        return sum(values)
    if name == "avg_over_time":
        return sum(values) / len(values)
    assert q is not None  # Prometheus' quantile: linear interpolation between ranks
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    lower, upper = math.floor(rank), math.ceil(rank)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower)


FOLDS: dict[str, Callable[[list[float]], float]] = {
    "sum": lambda xs: float(sum(xs)),
    "max": max,
    "min": min,
    "count": lambda xs: float(len(xs)),
    "avg": lambda xs: sum(xs) / len(xs),
}
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}
ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else math.nan,
    "%": lambda a, b: math.fmod(a, b) if b else math.nan,
}


def key(labels: Labels, matching: tuple[str, tuple[str, ...]] | None) -> Labels:
    if matching is None:
        return labels
    kind, names = matching
    return regroup(labels, ("by" if kind == "on" else "without", names))


def binop(
    op: str,
    left: Callable[[list[Record], float], Vector | float],
    right: Callable[[list[Record], float], Vector | float],
    is_bool: bool,
    matching: tuple[str, tuple[str, ...]] | None,
) -> Callable[[list[Record], float], Vector | float]:
    def run(records: list[Record], t: float) -> Vector | float:
        a, b = left(records, t), right(records, t)
        if op in ("and", "or", "unless"):
            if not isinstance(a, dict) or not isinstance(b, dict):
                raise ValueError(f"{op} needs two vectors")
            right_keys = {key(k, matching) for k in b}
            if op == "and":
                return {k: v for k, v in a.items() if key(k, matching) in right_keys}
            if op == "unless":
                return {k: v for k, v in a.items() if key(k, matching) not in right_keys}
            left_keys = {key(k, matching) for k in a}
            return {**a, **{k: v for k, v in b.items() if key(k, matching) not in left_keys}}
        if isinstance(a, dict) and isinstance(b, dict):
            by_key = {key(k, matching): v for k, v in b.items()}
            pairs: Iterable[tuple[Labels, float, float]] = (
                (k, v, by_key[key(k, matching)]) for k, v in a.items() if key(k, matching) in by_key
            )
        elif isinstance(a, dict) and not isinstance(b, dict):
            pairs = ((k, v, b) for k, v in a.items())
        elif isinstance(b, dict) and not isinstance(a, dict):
            pairs = ((k, float(a), v) for k, v in b.items())
        elif not isinstance(a, dict) and not isinstance(b, dict):
            if op in COMPARE:
                return float(COMPARE[op](a, b)) if is_bool else (a if COMPARE[op](a, b) else math.nan)
            return ARITH[op](a, b)
        else:
            raise AssertionError("unreachable")
        if op in COMPARE:
            if is_bool:
                return {k: float(COMPARE[op](x, y)) for k, x, y in pairs}
            return {k: x for k, x, y in pairs if COMPARE[op](x, y)}
        return {k: ARITH[op](x, y) for k, x, y in pairs}

    return run


def evaluate(expr: str, records: list[Record], at: float) -> Vector:
    """The instant query ``expr`` at time ``at`` over ``records``: its result vector."""
    result = Parser(expr).parse()(records, at)
    if not isinstance(result, dict):
        raise ValueError("a scalar result")
    return result


def as_dicts(vector: Vector) -> list[dict[str, str]]:
    return sorted((dict(k) for k in vector), key=lambda d: sorted(d.items()))
