"""Go format strings as templates: render them, and read a message back into its arguments.

KubeVirt builds event messages with ``fmt.Sprintf``-style format strings. A template is the
format string cut into literal text and argument slots; each slot has a *role* (what the
argument means, e.g. ``target_node``) and the role decides which characters the argument may
hold. Matching tolerates messages that were cut off at any length: the arguments read before the
cut are kept, the one being cut is dropped, and the match says it is incomplete.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

# Characters an argument of each role may hold. Kubernetes names never hold white space or a
# slash; node names can be FQDNs (dots); free text (errors, failure reasons) may be anything,
# even empty.
_NAME: Final = r"[^\s/\[\]]"
_TOKEN: Final = r"\S"
_TEXT: Final = r"[\s\S]"
ROLE_CHARS: Final[Mapping[str, str]] = {
    "vm_namespace": _NAME,
    "vm_name": _NAME,
    "pod_namespace": _NAME,
    "target_pod": _NAME,
    "migration_name": _NAME,
    "name": _NAME,
    "migration_uid": _TOKEN,
    "target_node": _TOKEN,
    "target_address": _TOKEN,
    "target_endpoint": _TOKEN,
    "target_ports": r"[0-9,]",
    "seconds": r"[0-9]",
    "failure_reason": _TEXT,
    "error": _TEXT,
}
_MAY_BE_EMPTY: Final = frozenset({"failure_reason", "error"})


@dataclass(frozen=True, slots=True)
class Slot:
    """An argument of a format string (``%s``, ``%v``, ``%d``) and what it means."""

    role: str


Token = str | Slot


@dataclass(frozen=True, slots=True)
class Match:
    """The arguments read from a message; ``complete`` is False when the message was cut."""

    values: Mapping[str, str]
    complete: bool


@dataclass(frozen=True, slots=True)
class _Compiled:
    full: re.Pattern[str]
    prefix: re.Pattern[str]


_COMPILED: Final[Mapping[str, _Compiled]] = {
    role: _Compiled(
        full=re.compile(f"{chars}*" if role in _MAY_BE_EMPTY else f"{chars}+"),
        prefix=re.compile(f"{chars}*"),
    )
    for role, chars in ROLE_CHARS.items()
}


def tokenize(format_string: str, roles: Sequence[str]) -> tuple[Token, ...]:
    """Cut a Go format string into literals and slots, one role per verb.

    ``%!`` (as in Go's ``%!(EXTRA string=…)`` artifact) stays literal text. Raises ValueError
    when the number of roles does not match the verbs, a role is unknown, or two verbs touch
    (such a template could not be read back).
    """
    tokens: list[Token] = []
    literal: list[str] = []
    verbs = 0
    i = 0
    while i < len(format_string):
        char = format_string[i]
        following = format_string[i + 1 : i + 2]
        if char == "%" and following in ("s", "v", "d"):
            if verbs >= len(roles):
                raise ValueError(f"{format_string!r}: more verbs than roles {tuple(roles)}")
            role = roles[verbs]
            if role not in ROLE_CHARS:
                raise ValueError(f"{format_string!r}: unknown role {role!r}")
            if tokens and not literal and isinstance(tokens[-1], Slot):
                raise ValueError(f"{format_string!r}: two verbs without text between them")
            if literal:
                tokens.append("".join(literal))
                literal = []
            tokens.append(Slot(role))
            verbs += 1
            i += 2
            continue
        if char == "%" and following == "%":
            literal.append("%")
            i += 2
            continue
        literal.append(char)
        i += 1
    if literal:
        tokens.append("".join(literal))
    if verbs != len(roles):
        raise ValueError(f"{format_string!r}: {verbs} verbs but roles {tuple(roles)}")
    return tuple(tokens)


def render(tokens: Sequence[Token], values: Mapping[str, str]) -> str:
    """Fill the slots with ``values`` by role — what KubeVirt's ``Sprintf`` would print."""
    return "".join(t if isinstance(t, str) else values[t.role] for t in tokens)


def match(tokens: Sequence[Token], text: str) -> Match | None:
    """Read ``text`` as a rendering of ``tokens``, or as a cut-off prefix of one.

    Returns None when ``text`` is neither. A complete match wins over a cut-off reading.
    """
    return _walk(tokens, 0, text, 0, {})


def _walk(tokens: Sequence[Token], i: int, text: str, pos: int, got: dict[str, str]) -> Match | None:
    if i == len(tokens):
        return Match(got, True) if pos == len(text) else None
    token = tokens[i]
    rest = text[pos:]
    if isinstance(token, str):
        if rest.startswith(token):
            return _walk(tokens, i + 1, text, pos + len(token), got)
        if token.startswith(rest):  # the message ends inside this literal
            return Match(got, False)
        return None
    patterns = _COMPILED[token.role]
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    if after is None:
        return Match({**got, token.role: rest}, True) if patterns.full.fullmatch(rest) else None
    assert isinstance(after, str)
    cut: Match | None = None
    end = text.find(after, pos)
    while end != -1:
        value = text[pos:end]
        if patterns.full.fullmatch(value):
            found = _walk(tokens, i + 2, text, end + len(after), {**got, token.role: value})
            if found is not None and found.complete:
                return found
            cut = cut or found
        elif not patterns.prefix.fullmatch(value):
            break  # the slot cannot stretch past a character its role never holds
        end = text.find(after, end + 1)
    if cut is not None:
        return cut
    splits = _cut_splits(patterns.prefix, rest, after)
    if not splits:
        return None
    if len(splits) == 1 and splits[0] < len(rest) and patterns.full.fullmatch(rest[: splits[0]]):
        # The argument cannot stretch further, and the start of the next literal follows it:
        # the argument is whole, only the literal was cut.
        return Match({**got, token.role: rest[: splits[0]]}, False)
    return Match(got, False)


def _cut_splits(prefix: re.Pattern[str], rest: str, after: str) -> list[int]:
    """Where ``rest`` may split into (part of) an argument and the start of ``after``."""
    longest = prefix.match(rest)
    reach = longest.end() if longest else 0
    return [k for k in range(max(0, len(rest) - len(after)), reach + 1) if after.startswith(rest[k:])]
