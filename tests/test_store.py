"""The on-disk queue, the dead letters, and the backoff: each alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from otelkv.config import RetryConfig
from otelkv.delivery.store import DeadLettersFull, Store
from otelkv.errors import QueueFull
from otelkv.forward.retry import Backoff


def store(path: Path, max_bytes: int = 1000, max_records: int = 100, max_dead_letters: int = 3) -> Store:
    return Store(path / "q.db", max_bytes=max_bytes, max_records=max_records, max_dead_letters=max_dead_letters)


def test_fifo_and_resume_after_reopen(tmp_path: Path) -> None:
    s = store(tmp_path)
    ids = [s.put(f"batch-{i}".encode(), 2) for i in range(3)]
    assert s.stats()[:2] == (6, 21)
    s.close()
    again = store(tmp_path)  # a restart: what was queued is still there, in order
    assert again.stats()[:2] == (6, 21)
    first = again.oldest()
    assert first is not None and first.id == ids[0] and first.payload == b"batch-0" and first.intact
    again.remove(first.id)
    again.remove(first.id)  # twice: harmless
    nxt = again.oldest()
    assert nxt is not None and nxt.id == ids[1]
    assert again.stats()[:2] == (4, 14)
    again.close()


def test_bounds_refuse_with_a_retryable_error(tmp_path: Path) -> None:
    s = store(tmp_path, max_bytes=10, max_records=5)
    s.put(b"12345", 2)
    with pytest.raises(QueueFull) as caught:
        s.put(b"123456", 1)  # 11 bytes
    assert caught.value.retry_after and "queue full" in str(caught.value)
    with pytest.raises(QueueFull):
        s.put(b"1", 4)  # 6 records
    s.put(b"12345", 3)
    assert s.full()
    s.close()


def test_a_corrupt_entry_is_detected(tmp_path: Path) -> None:
    s = store(tmp_path)
    entry_id = s.put(b"good payload", 1)
    s.close()
    with sqlite3.connect(tmp_path / "q.db") as db:  # a torn or tampered write
        db.execute("UPDATE queue SET payload = ? WHERE id = ?", (b"g00d payload", entry_id))
    again = store(tmp_path)
    entry = again.oldest()
    assert entry is not None and not entry.intact
    again.close()


def test_dead_letters_are_kept_bounded_and_take_the_entry_off_the_queue(tmp_path: Path) -> None:
    """Issue 18 item 3: at the bound a dead letter is refused (DeadLettersFull), never made room
    for by evicting the oldest — the eviction lost 14,920 acknowledged records."""
    s = store(tmp_path, max_dead_letters=2)
    queued = s.put(b"q", 5)
    s.dead_letter(b"q", 5, "gave up", entry_id=queued)
    assert s.oldest() is None and s.stats()[:2] == (0, 0)
    s.dead_letter(b"b", 1, "refused")
    held = s.put(b"held", 3)
    with pytest.raises(DeadLettersFull, match=r"dead_letter_max_entries 2"):
        s.dead_letter(b"held", 3, "refused again", entry_id=held)
    assert s.dead_letters_full == 1
    assert [d.error for d in s.dead_letters()] == ["gave up", "refused"]  # nothing evicted
    entry = s.oldest()
    assert entry is not None and entry.id == held and s.stats()[:2] == (3, 4)  # the batch stays queued
    letters = s.dead_letters()
    assert s.dead_letter_payload(letters[0].id) == b"q"
    s.forget_dead_letter(letters[0].id)  # a replay makes room
    s.dead_letter(b"held", 3, "refused again", entry_id=held)
    assert [d.error for d in s.dead_letters()] == ["refused", "refused again"] and s.oldest() is None
    s.close()
    s.close()


def test_backoff_grows_is_capped_honours_the_hint_and_gives_up() -> None:
    now = [0.0]
    config = RetryConfig(initial_interval=1, max_interval=4, multiplier=2, jitter=0.5, max_elapsed=20)
    backoff = Backoff(config, clock=lambda: now[0], rand=lambda: 0.5)  # the middle of the jitter
    waits = []
    for _ in range(5):
        wait = backoff.next()
        assert wait is not None
        waits.append(wait)
        now[0] += wait
    assert waits == [1, 2, 4, 4, 4]
    assert now[0] == 15 and backoff.next() == 4
    now[0] = 19
    assert backoff.next() == 1  # the last wait ends at max_elapsed: the last attempt is made then
    now[0] = 20.0
    assert backoff.next() is None  # max_elapsed passed: given up
    now[0] = 0.0
    fresh = Backoff(config, clock=lambda: now[0], rand=lambda: 0.5)
    assert fresh.next(hint=3) == 3  # the target's Retry-After is longer than our wait
    low = Backoff(config, clock=lambda: 0.0, rand=lambda: 0.0).next()
    high = Backoff(config, clock=lambda: 0.0, rand=lambda: 1.0).next()
    assert (low, high) == (0.5, 1.5)  # jitter bounds


def test_a_retry_after_past_max_elapsed_is_a_pause_not_a_reason_to_give_up() -> None:
    """Issue 18 item 3: ``Retry-After: 99999`` made ``next`` give up at once (the batch was
    dead-lettered after one attempt); now the wait is cut to end at max_elapsed, and the last
    attempt is made then (the queue sender also caps the hint at max_interval)."""
    now = [0.0]
    config = RetryConfig(initial_interval=1, max_interval=4, multiplier=2, jitter=0.5, max_elapsed=20)
    backoff = Backoff(config, clock=lambda: now[0], rand=lambda: 0.5)
    assert backoff.next(hint=99999) == 20
    now[0] = 20
    assert backoff.next(hint=99999) is None


def test_dead_letter_cli_lists_and_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from otelkv.commands import main  # noqa: PLC0415
    from tests.loki_sink import LokiSink  # noqa: PLC0415
    from tests.reliability import numbered_events, requests_of, stored  # noqa: PLC0415

    sink = LokiSink().start()
    try:
        config = tmp_path / "otelkv.yaml"
        config.write_text(
            f"forward: {{endpoint: '{sink.url}', tenant: kubevirt}}\ndelivery: {{store_path: '{tmp_path / 'q.db'}'}}\n"
        )
        s = store(tmp_path)
        batch = requests_of(numbered_events(4, "dl"), 4)[0]
        s.dead_letter(batch.SerializeToString(), 4, "gave up after 12 attempts: 503")
        s.dead_letter(b"\xff not protobuf", 1, "corrupt queue entry")
        s.close()
        assert main(["dead-letter", "list", "--config", str(config)]) == 0
        listing = capsys.readouterr().out
        assert "gave up after 12 attempts" in listing and "corrupt queue entry" in listing
        assert main(["dead-letter", "replay", "--config", str(config)]) == 1  # the corrupt one stays
        assert "replayed 1 dead letters" in capsys.readouterr().out
        assert set(stored(sink)) == {f"dl-{i:05d}" for i in range(4)}
        again = store(tmp_path)
        assert [d.error for d in again.dead_letters()] == ["corrupt queue entry"]
        again.close()
    finally:
        sink.stop()
