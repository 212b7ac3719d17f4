"""Build :class:`~otelkv.kubevirt.model.MigrationEvent` objects fast: ``new_event`` and ``evolve``.

A frozen dataclass's __init__ sets each field with object.__setattr__: with 26 fields that is
most of the cost of reading an event (about 3x a slot write). ``new_event`` and ``evolve`` build
the same objects by writing the slots directly, one line a field, generated below from the
dataclass's own fields (as :mod:`dataclasses` generates ``__init__``: the generated source holds
only the dataclass's field names). tests/test_kubevirt_model_fast.py checks them against the
dataclass's ``__init__`` and :func:`dataclasses.replace`, and that no field has a default
factory or a post-init step they would skip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING
from operator import attrgetter
from typing import Any, Final

from .model import MigrationEvent

__all__ = ["builder", "evolve", "new_event", "replacer"]

_FIELDS: Final = tuple(MigrationEvent.__dataclass_fields__)
_READ_ALL: Final = attrgetter(*_FIELDS)
_INDEX: Final = {name: i for i, name in enumerate(_FIELDS)}


def _generated() -> tuple[Callable[..., MigrationEvent], Callable[..., MigrationEvent]]:
    """``new_event(*, reason, message, ...)`` with the dataclass's defaults, and ``build(*values)``
    taking every field in order."""
    scope: dict[str, Any] = {"new": object.__new__, "cls": MigrationEvent}
    params, writes, positional = [], [], []
    for i, (name, f) in enumerate(MigrationEvent.__dataclass_fields__.items()):
        scope[f"set_{i}"] = getattr(MigrationEvent, name).__set__  # the slot's own setter
        if f.default is MISSING:
            params.append(name)
        else:
            scope[f"default_{i}"] = f.default
            params.append(f"{name}=default_{i}")
        writes.append(f"    set_{i}(event, {name})\n")
        positional.append(name)
    body = "    event = new(cls)\n" + "".join(writes) + "    return event\n"
    exec(f"def new_event(*, {', '.join(params)}):\n{body}", scope)  # our own field names only
    exec(f"def build({', '.join(positional)}):\n{body}", scope)
    return scope["new_event"], scope["build"]


new_event, _build = _generated()
new_event.__doc__ = "``MigrationEvent(**values)``, built slot by slot."


def builder(*names: str) -> Callable[..., MigrationEvent]:
    """A function taking the fields ``names`` positionally, in that order (the others at their
    defaults): for a caller that builds one event per record, positional arguments cost a third of
    28 keywords."""
    fields = MigrationEvent.__dataclass_fields__
    unknown = [name for name in names if name not in fields]
    required = [name for name, f in fields.items() if f.default is MISSING and name not in names]
    if unknown or required or len(set(names)) != len(names):
        raise ValueError(f"builder: unknown {unknown}, missing {required}, or a name twice in {names}")
    scope: dict[str, Any] = {"new": object.__new__, "cls": MigrationEvent}
    writes = []
    for i, (name, f) in enumerate(fields.items()):
        scope[f"set_{i}"] = getattr(MigrationEvent, name).__set__
        if name not in names:
            scope[f"default_{i}"] = f.default
        writes.append(f"    set_{i}(event, {name if name in names else f'default_{i}'})\n")
    body = "    event = new(cls)\n" + "".join(writes) + "    return event\n"
    exec(f"def build({', '.join(names)}):\n{body}", scope)  # our own field names only
    built: Callable[..., MigrationEvent] = scope["build"]
    return built


def replacer(*names: str) -> Callable[..., MigrationEvent]:
    """``replace(event, *values)``: a copy of ``event`` with the fields ``names`` set to ``values``,
    positionally, in that order: one call instead of :func:`evolve`'s keywords and field list (the
    tracker's copy of each event it fills)."""
    fields = MigrationEvent.__dataclass_fields__
    unknown = [name for name in names if name not in fields]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"replacer: unknown {unknown}, or a name twice in {names}")
    scope: dict[str, Any] = {"new": object.__new__, "cls": MigrationEvent}
    writes = []
    for i, name in enumerate(fields):
        scope[f"set_{i}"] = getattr(MigrationEvent, name).__set__
        writes.append(f"    set_{i}(event, {name if name in names else f'old.{name}'})\n")
    body = "    event = new(cls)\n" + "".join(writes) + "    return event\n"
    exec(f"def replace(old, {', '.join(names)}):\n{body}", scope)  # our own field names only
    replace: Callable[..., MigrationEvent] = scope["replace"]
    return replace


def evolve(event: MigrationEvent, **changes: Any) -> MigrationEvent:
    """``dataclasses.replace(event, **changes)``, built slot by slot."""
    values = list(_READ_ALL(event))
    for name, value in changes.items():
        values[_INDEX[name]] = value
    return _build(*values)
