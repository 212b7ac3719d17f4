"""A bound on the Python objects reading a JSON file beside the store may build, checked before any
is built.

``json.loads`` builds every list, dict, number and string of a file before the caller can look at
one: a tampered ``<store>.delivered.json`` of 8 MiB holding ``[0]`` two million times took
otelkv to 392 MiB at start, a ``<store>.migrations.json`` of 16 MiB holding ``[]`` to 464 MiB
(the pod's limit is 192 MiB), though each file was within its bound in bytes. Bytes do not bound
objects; the JSON's structure does: every value but the first follows a ``,`` or opens a ``[`` or
``{`` (its parts then follow commas too), so the count of those three tokens outside strings
bounds the values a parse builds (a dict's keys at most double it). The caller sets a budget
from what a legitimate file of its configured bounds holds, and a file over it is damaged.

Counted at C speed where it can be: ``bytes.count`` over the raw file (20 ms for 8 MiB) is an
upper bound, enough for every legitimate file. Only a file over the budget by that count is
counted again outside its strings (a string holding commas, a failure message, must not make a
legitimate file look damaged): string by string, with ``bytes.count`` between them, so nothing
is copied, and it stops as soon as the count passes the budget, or the strings pass what that
many tokens can hold in valid JSON (two per token: a key and its value) — about a second at most.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = ["OverBudget", "loads_within", "structural_tokens"]

#: A JSON string, escapes and all (the unrolled form: no backtracking over ordinary characters).
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


class OverBudget(ValueError):
    """A file holds more JSON values than its budget allows."""


def _raw_count(data: bytes) -> int:
    return data.count(b"[") + data.count(b"{") + data.count(b",")


def structural_tokens(data: bytes, stop_above: int | None = None) -> int:
    """How many ``[``, ``{`` and ``,`` ``data`` holds outside its JSON strings; once past
    ``stop_above`` (or once its strings are more than twice that), some number above it."""
    limit = len(data) if stop_above is None else stop_above
    found = at = 0
    count = data.count
    for strings, match in enumerate(_STRING.finditer(data), 1):
        start = match.start()
        found += count(b"[", at, start) + count(b"{", at, start) + count(b",", at, start)
        if found > limit or strings > 2 * limit + 2:
            return max(found, limit + 1)
        at = match.end()
    return found + count(b"[", at) + count(b"{", at) + count(b",", at)


def loads_within(data: bytes, budget: int, what: str) -> Any:
    """``json.loads(data)`` when ``data`` holds at most ``budget`` structural tokens (outside
    strings); :class:`OverBudget` naming ``what`` the budget comes from, before anything is built."""
    if _raw_count(data) > budget and structural_tokens(data, budget) > budget:
        raise OverBudget(f"more JSON values than {budget} ({what})")
    return json.loads(data.decode("utf-8", "surrogatepass"))
