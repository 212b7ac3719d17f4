"""``new_event`` and ``evolve`` build MigrationEvents slot by slot (issue 13: the frozen dataclass's
own __init__ was a third of reading an event); they must build exactly what the dataclass does."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otelkv.kubevirt import MigrationEvent
from otelkv.kubevirt.event_builders import builder, evolve, new_event, replacer

_text = st.none() | st.text(max_size=5)
_values = {
    "reason": st.text(max_size=5),
    "message": st.text(max_size=5),
    "timestamp": st.none() | st.datetimes(timezones=st.just(UTC)),
    "count": st.none() | st.integers(),
    "target_ports": st.none() | st.tuples(st.integers(1, 65535)),
    "is_migration": st.booleans(),
    "truncated": st.booleans(),
    "duration_seconds": st.none() | st.floats(allow_nan=False),
}
_optional = {f.name: _values.get(f.name, _text) for f in dataclasses.fields(MigrationEvent)}
_fields = st.fixed_dictionaries(
    {"reason": _values["reason"], "message": _values["message"]},
    optional={name: values for name, values in _optional.items() if name not in ("reason", "message")},
)


def test_nothing_the_dataclass_does_at_init_is_skipped() -> None:
    """No default factory, no post-init step, no field left out of __init__: a slot write per field
    is all its __init__ does."""
    assert not hasattr(MigrationEvent, "__post_init__")
    for f in dataclasses.fields(MigrationEvent):
        assert f.init and f.default_factory is dataclasses.MISSING, f.name
        assert f.default is not dataclasses.MISSING or f.name in ("reason", "message"), f.name


@given(_fields)
def test_new_event_is_the_dataclass_init(values: dict[str, object]) -> None:
    made = new_event(**values)
    expected = MigrationEvent(**values)  # type: ignore[arg-type]
    assert made == expected
    assert type(made) is MigrationEvent
    assert hash(made) == hash(expected)
    assert {f.name: getattr(made, f.name) for f in dataclasses.fields(made)} == dataclasses.asdict(expected)


@given(_fields, _fields)
def test_evolve_is_dataclasses_replace(values: dict[str, object], changes: dict[str, object]) -> None:
    event = MigrationEvent(**values)  # type: ignore[arg-type]
    assert evolve(event, **changes) == dataclasses.replace(event, **changes)  # type: ignore[arg-type]


@given(_fields, st.randoms(use_true_random=False))
def test_builder_takes_its_fields_in_its_order(values: dict[str, object], rng: random.Random) -> None:
    """builder(*names)(*values) is the dataclass's __init__ with those keywords (the parser builds
    each event with one, positionally)."""
    names = list(values)
    rng.shuffle(names)
    made = builder(*names)(*(values[name] for name in names))
    assert made == MigrationEvent(**values)  # type: ignore[arg-type]
    assert type(made) is MigrationEvent


@given(_fields, _fields, st.randoms(use_true_random=False))
def test_replacer_is_dataclasses_replace(
    values: dict[str, object], changes: dict[str, object], rng: random.Random
) -> None:
    """replacer(*names)(event, *values) is dataclasses.replace (the tracker fills each event with one)."""
    event = MigrationEvent(**values)  # type: ignore[arg-type]
    names = list(changes)
    rng.shuffle(names)
    made = replacer(*names)(event, *(changes[name] for name in names))
    assert made == dataclasses.replace(event, **changes)  # type: ignore[arg-type]
    assert made is not event


def test_builders_refuse_names_that_are_no_fields() -> None:
    with pytest.raises(ValueError, match="unknown"):
        builder("reason", "message", "no_such_field")
    with pytest.raises(ValueError, match="missing"):
        builder("reason")  # message has no default
    with pytest.raises(ValueError, match="twice"):
        replacer("phase", "phase")


def test_events_stay_frozen() -> None:
    event = evolve(new_event(reason="r", message="m", timestamp=datetime.now(UTC)), phase="Running")
    try:
        event.phase = "Failed"  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("an event built slot by slot must stay frozen")
    assert event.phase == "Running"
