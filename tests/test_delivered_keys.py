"""The duplicate window (:class:`otelkv.pipeline.DeliveredKeys`): bounded, oldest forgotten first.

Its cost once full is measured by ``bench/bench.py`` (the "dedup window" phase), not here.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from otelkv.pipeline import DeliveredKeys


@given(size=st.integers(1, 6), keys=st.lists(st.integers(0, 12), max_size=60))
def test_eviction_forgets_the_first_seen_key_first(size: int, keys: list[int]) -> None:
    """A model: keys in first-seen order; a key seen again keeps its place; the front goes."""
    window, model = DeliveredKeys(size), list[int]()
    for key in keys:
        window.add(key)
        if key not in model:
            model.append(key)
        del model[:-size]
        assert len(window) == len(model)
        assert [k for k in range(13) if k in window] == sorted(model)


def test_a_full_window_keeps_exactly_the_newest_keys() -> None:
    window = DeliveredKeys(50_000)
    for key in range(120_000):
        window.add(("uid", key))
    assert len(window) == 50_000
    assert ("uid", 69_999) not in window and ("uid", 70_000) in window and ("uid", 119_999) in window
