"""``otelkv dead-letter list|replay``: see the batches otelkv gave up on, and send them again."""

from __future__ import annotations

import argparse
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from tabulate import tabulate

from otelkv.config import Config, ConfigError, load
from otelkv.delivery.store import Store, read_dead_letters
from otelkv.errors import UserError
from otelkv.forward.targets import make_forwarder
from otelkv.otlp.decode import decode_protobuf  # deep records, as they were received


class DeadLetterError(UserError, ValueError):
    """No such store, or no such dead letter; the message names it."""


def _open(config: Config) -> Store:
    d = config.delivery
    if not d.store_path:
        raise ConfigError("delivery.store_path: not set, so there are no dead letters")
    if not Path(d.store_path).is_file():  # opening would create an empty database
        raise DeadLetterError(f"delivery.store_path: no store at {d.store_path!r} (has otelkv serve run with it?)")
    return Store(
        d.store_path,
        max_bytes=d.queue_max_bytes,
        max_records=d.queue_max_records,
        max_dead_letters=d.dead_letter_max_entries,
        durable=d.fsync == "durable",
    )


def list_dead_letters(config: Config) -> str:
    """A table of the dead letters: id, when, records, bytes, why. Read without the store's lock,
    so that it works beside a running ``otelkv serve`` (docs/reliability.md)."""
    d = config.delivery
    if not d.store_path:
        raise ConfigError("delivery.store_path: not set, so there are no dead letters")
    if not Path(d.store_path).is_file():
        raise DeadLetterError(f"delivery.store_path: no store at {d.store_path!r} (has otelkv serve run with it?)")
    try:
        letters = read_dead_letters(d.store_path)
    except sqlite3.Error as error:
        raise DeadLetterError(f"delivery.store_path: cannot read dead letters in {d.store_path!r}: {error}") from None
    rows = [
        (
            letter.id,
            datetime.fromtimestamp(letter.failed, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            letter.records,
            letter.bytes,
            letter.error[:100],
        )
        for letter in letters
    ]
    return tabulate(rows, headers=["ID", "FAILED (UTC)", "RECORDS", "BYTES", "ERROR"]) + "\n"


def replay_dead_letters(config: Config, ids: list[int] | None) -> tuple[int, int]:
    """Send dead letters (all, or ``ids``) to the configured target; delivered ones are deleted.

    Returns (replayed, still failing). A letter the target refuses again stays. It writes the
    store, so it takes the store's lock: beside a running ``otelkv serve`` it stops with
    :class:`~otelkv.delivery.files.StoreLocked` (exit 2, naming the holder's pid).
    """
    store = _open(config)
    letters = store.dead_letters()
    unknown = sorted(set(ids or ()) - {letter.id for letter in letters})
    if unknown:
        store.close()
        raise DeadLetterError(f"no dead letter with id {', '.join(map(str, unknown))} in {config.delivery.store_path}")
    forwarder = make_forwarder(config.forward, max_message_bytes=config.max_message_bytes)
    replayed = failed = 0
    try:
        for letter in letters:
            if ids is not None and letter.id not in ids:
                continue
            payload = store.dead_letter_payload(letter.id)
            try:
                request = decode_protobuf(payload or b"")
                delivery = forwarder.send(request, timeout=config.forward.timeout)
            except Exception:  # Retryable, or a batch that no longer decodes: it stays a dead letter
                failed += 1
                continue
            if delivery.rejected >= letter.records:
                failed += 1
                continue
            store.forget_dead_letter(letter.id)
            replayed += 1
    finally:
        forwarder.close()
        store.close()
    return replayed, failed


def run(args: argparse.Namespace) -> int:
    """List the dead letters, or replay them; 1 when some still fail."""
    cfg = load(args.config)
    if cfg.delivery.store_path:
        from otelkv.delivery.store_check import check_store_path  # noqa: PLC0415

        check_store_path(cfg.delivery.store_path)
    if args.action == "list":
        print(list_dead_letters(cfg), end="")
        return 0
    replayed, failed = replay_dead_letters(cfg, args.ids or None)
    print(f"replayed {replayed} dead letters to {cfg.forward.endpoint}; {failed} still failing")
    return 0 if failed == 0 else 1
