"""``delivery:`` — when the collector is told "accepted", the on-disk queue and dead letters, retries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from otelkv.config.values import Duration, MiB, Size, positive
from otelkv.errors import ConfigError

__all__ = ["REQUEST_COST", "DeliveryConfig", "RetryConfig"]

#: The memory one request of ``max_message_bytes`` can be charged, in multiples of its size: its
#: wire bytes and their joined copy, the inflated bytes and theirs, and its decoded form
#: (otelkv.receive.charge.DECODE_COST, 8x); see docs/reliability.md. It was 10: a gzip'ed request
#: of the largest size was then refused 413 by a cap the check had let start.
REQUEST_COST: Final = 12


@dataclass
class RetryConfig:
    """Backoff between attempts to forward one batch (queue mode), and when to give up on it."""

    initial_interval: Duration = 1.0
    max_interval: Duration = 30.0
    multiplier: float = 1.5
    #: Each wait is drawn from [wait x (1 - jitter), wait x (1 + jitter)].
    jitter: float = 0.5
    #: After this long a batch is dead-lettered rather than retried forever.
    max_elapsed: Duration = 3600.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first wrong ``delivery.retry.`` key."""
        for key in ("initial_interval", "max_interval", "max_elapsed"):
            positive(f"delivery.retry.{key}", getattr(self, key))
        if self.multiplier < 1:
            raise ConfigError(f"delivery.retry.multiplier: must be at least 1, got {self.multiplier!r}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"delivery.retry.jitter: must be in [0, 1), got {self.jitter!r}")


@dataclass
class DeliveryConfig:
    """When the collector is told "accepted", and what otelkv holds meanwhile."""

    #: ``sync``: only after the target accepted. ``queue``: once written to the on-disk queue.
    mode: str = "sync"
    #: The SQLite file of the queue and of dead letters. Required in queue mode; in sync mode,
    #: when set, batches the target refuses for good are kept there as dead letters.
    store_path: str | None = None
    #: ``durable``: fsync every commit (SQLite synchronous=FULL); ``normal``: WAL checkpoints only.
    fsync: str = "durable"
    queue_max_bytes: Size = 256 * MiB
    queue_max_records: int = 1_000_000
    dead_letter_max_entries: int = 10_000
    #: Memory that requests being received and processed may take at once (wire, inflated and
    #: decoded bytes, docs/reliability.md); beyond it, UNAVAILABLE / 503.
    max_inflight_bytes: Size = 64 * MiB
    #: With a store: the largest file of the duplicate window saved beside it (written with the
    #: tracker's migrations; the newest keys that fit) and read back at start (a larger one is
    #: ignored with a warning). 50,000 keys of Kubernetes events take about 3 MiB.
    saved_window_max_bytes: Size = 8 * MiB
    retry: RetryConfig = field(default_factory=RetryConfig)

    def validate(self, max_message_bytes: int) -> None:
        """Raise :class:`ConfigError` naming the first wrong ``delivery.`` key; one request of
        ``max_message_bytes`` must fit in ``max_inflight_bytes``. Whether the store can be opened on
        this machine is :func:`otelkv.delivery.store_check.check_store_path`'s."""
        if self.mode not in ("sync", "queue"):
            raise ConfigError(f"delivery.mode: must be sync or queue, got {self.mode!r}")
        if self.fsync not in ("durable", "normal"):
            raise ConfigError(f"delivery.fsync: must be durable or normal, got {self.fsync!r}")
        if self.mode == "queue" and not self.store_path:
            raise ConfigError("delivery.store_path: queue mode needs a file for its queue (on a volume)")
        if self.store_path and "\x00" in self.store_path:
            raise ConfigError("delivery.store_path: a path cannot hold a NUL character")
        for key in (
            "queue_max_bytes",
            "queue_max_records",
            "dead_letter_max_entries",
            "max_inflight_bytes",
            "saved_window_max_bytes",
        ):
            positive(f"delivery.{key}", getattr(self, key))
        # One request of max_message_bytes must fit: its wire bytes, inflated bytes and decoded form.
        needed = max_message_bytes * REQUEST_COST
        if self.max_inflight_bytes < needed:
            raise ConfigError(
                f"delivery.max_inflight_bytes: must be at least {REQUEST_COST} x max_message_bytes ({needed}): "
                f"the memory one request of that size takes, got {self.max_inflight_bytes}"
            )
        self.retry.validate()
