# Types of the compiled core (otelkv/otlp/_wire.c); the module docstring there says what each does.
from collections.abc import Callable, Hashable
from typing import Any, Final

ABI_VERSION: Final[int]

class _Plan: ...

#: (the values otelkv.kubevirt.k8s.collector_event reads, in COLLECTOR_FIELDS' order; key,
#: record start, record end, keys so far)
_View = tuple[tuple[Any, ...], Hashable | None, int, int, int]
#: (received, duplicates, dropped_others, passed)
_Counts = tuple[int, int, int, int]

def count_messages(payload: bytes, /) -> int: ...
def scan(
    payload: bytes,
    kinds: frozenset[str],
    drop_others: bool,
    delivered: Callable[[Hashable], bool],
    attributes: frozenset[str],
    /,
) -> tuple[_Plan, list[_View], list[Hashable], _Counts] | None: ...
def build(
    payload: bytes,
    plan: _Plan,
    decisions: list[tuple[str | None, Any, bytes | None] | None],
    service_name: str,
    attributes: tuple[tuple[str, str], ...],
    limit: int,
    /,
) -> bytes | int: ...
