"""Saved files beside the store are bounded in the objects reading them builds, not only in bytes
(probe of the merged build, finding 1): an 8 MiB ``<store>.delivered.json`` of ``[0]`` keys, just
under ``delivery.saved_window_max_bytes``, took ``otelkv serve`` to 392 MiB at start; a 16 MiB
``<store>.migrations.json`` holding an array of ``[]`` to 464 MiB, refused as "must be a list"
only after it was parsed. The pod's limit is 192 MiB: it would crash-loop. A file holding more
JSON values than a legitimate one of the configured bounds is damaged now: one warning, and that
part starts empty (measured: 71 and 79 MiB, 65 MiB with no saved file)."""

from __future__ import annotations

import json
import logging
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from otelkv.delivery.json_budget import OverBudget, loads_within, structural_tokens
from otelkv.delivery.tracker_state import TOKENS_PER_MIGRATION, PersistentTracker, state_budget, state_path
from otelkv.delivery.window_state import TOKENS_PER_KEY, dump_keys, key_budget, restore, window_path
from otelkv.kubevirt import state as saved_state
from otelkv.kubevirt.record import OBJECT_FACTS, Record
from tests.loki_sink import LokiSink
from tests.scenarios import BASE
from tests.serve_child import ServeChild
from tests.test_delivery_tracker_state import state

MiB = 1024 * 1024


# -- the count -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=',[{]}"\\ab'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet=',[{"ab'), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
@example(["a,b", {"[{": ","}, [[], {}]])
def test_the_count_is_of_the_tokens_outside_strings(value: Any) -> None:
    data = json.dumps(value, separators=(",", ":")).encode()
    bare = json.dumps(_strings_emptied(value), separators=(",", ":")).encode()
    expected = bare.count(b"[") + bare.count(b"{") + bare.count(b",")
    assert structural_tokens(data) == expected
    assert loads_within(data, expected, "test") == value
    if expected:
        with pytest.raises(OverBudget):
            loads_within(data, expected - 1, "test")


def _strings_emptied(value: Any) -> Any:
    if isinstance(value, str):
        return ""
    if isinstance(value, list):
        return [_strings_emptied(v) for v in value]
    if isinstance(value, dict):
        return {str(i): _strings_emptied(v) for i, v in enumerate(value.values())}
    return value


def test_many_strings_and_few_tokens_stop_the_count_early() -> None:
    """Invalid JSON of a million adjacent strings: the count stops at twice its limit of strings."""
    assert structural_tokens(b'""' * 1_000_000, 10) > 10


def test_the_budgets_hold_the_largest_legitimate_entries() -> None:
    """A migration with every field set, every fact fixed and concluded by an object's key from a
    cluster; the largest key otelkv makes, a summary's of such an object record."""
    record = Record(1, None)
    for name in saved_state._TEXTS:
        setattr(record, name, "x,[{")  # commas and brackets inside strings do not count
    for name in saved_state._TIMES:
        setattr(record, name, BASE)
    record.events, record.fixed = 3, set(OBJECT_FACTS)
    record.concluded_by = ("object", "uid", "17", "MODIFIED", "cluster")
    one = json.dumps(saved_state.dump([record], BASE)).encode()
    two = json.dumps(saved_state.dump([record, record], BASE)).encode()
    per_migration = structural_tokens(two) - structural_tokens(one)
    assert per_migration * 1.4 <= TOKENS_PER_MIGRATION, per_migration
    summary = ("kubevirt.migration.summary", ("object", "uid", "17", "MODIFIED", "cluster"))
    per_key = structural_tokens(dump_keys([summary] * 2, 1 << 20)[0]) - structural_tokens(
        dump_keys([summary], 1 << 20)[0]
    )
    assert per_key <= TOKENS_PER_KEY, per_key


# -- the files --------------------------------------------------------------------------------------


def test_a_window_of_tiny_keys_is_not_parsed(tmp_path: Path, caplog: Any) -> None:
    """Before, every key was built (and a 1,000-key window kept the newest 1,000 of them)."""
    path = tmp_path / "store.db.delivered.json"
    keys = key_budget(1000)  # each "[0]," is two tokens: twice what a 1,000-key window may hold
    path.write_bytes(b'{"version":1,"keys":[' + b",".join([b"[0]"] * keys) + b"]}")
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING):
            assert list(restore(path, 8 * MiB, 1000)) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * path.stat().st_size, peak  # the file's bytes, not its objects (28x before)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "OverBudget: more JSON values than" in lines[0], lines


def test_a_state_of_empty_lists_is_not_parsed(tmp_path: Path, caplog: Any) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(b'{"version":1,"junk":[' + b",".join([b"[]"] * state_budget(100)) + b"]}")
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING):
            assert PersistentTracker(path, max_entries=100).restored == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * path.stat().st_size, peak
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "more JSON values than" in lines[0] and "enrich.max_migrations 100" in lines[0]


def test_a_full_state_with_commas_in_its_strings_is_restored(tmp_path: Path) -> None:
    """Failure messages are free text: their commas are no structure (the raw count is ten times
    the budget here)."""
    saved = state(100, text=0)
    for migration in saved["migrations"]:
        migration["failure"] = "," * 1000
    path = tmp_path / "m.json"
    path.write_text(json.dumps(saved))
    assert path.read_bytes().count(b",") > 10 * state_budget(100)
    assert PersistentTracker(path, max_entries=100).restored == 100


def test_a_full_window_of_the_largest_keys_is_restored(tmp_path: Path) -> None:
    summary = ("kubevirt.migration.summary", ("object", "u,", "17", "MODIFIED", "c"))
    saved = [(f"uid-{i}", i, "c") for i in range(500)] + [(*summary[:1], (*summary[1][:2], str(i))) for i in range(500)]
    path = tmp_path / "store.db.delivered.json"
    path.write_bytes(dump_keys(saved, 1 << 20)[0])
    assert list(restore(path, 1 << 20, 1000)) == saved


# -- otelkv serve, its peak memory (the probe's window_bomb.py and state_bomb.py) --------------------


@pytest.mark.parametrize("kind", ["window", "migrations"])
def test_serve_starts_past_a_saved_file_bomb_within_the_pods_memory(tmp_path: Path, kind: str) -> None:
    sink = LokiSink().start()
    store = str(tmp_path / "q.db")
    if kind == "window":  # 8 MiB - 40 bytes of "[0]," (392 MiB before)
        window_path(store).write_bytes(b'{"version":1,"keys":[' + b",".join([b"[0]"] * 2_097_140) + b"]}")
    else:  # 16 MiB - 40 bytes of "[]," (464 MiB before)
        state_path(store).write_bytes(b'{"version":1,"junk":[' + b",".join([b"[]"] * 5_592_392) + b"]}")
    config = tmp_path / "otelkv.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "grpc_listen": "127.0.0.1:0",
                "http_listen": "127.0.0.1:0",
                "forward": {"endpoint": sink.url},
                "delivery": {"store_path": store},
            }
        )
    )
    child = ServeChild(config)  # it started: the line "otelkv serving" was read
    try:
        peak = child.status("VmHWM")
    finally:
        child.stop()
        sink.stop()
    assert peak < 150 * MiB, f"peak {peak / MiB:.0f} MiB (the pod's limit is 192 MiB)"
