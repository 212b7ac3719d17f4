"""``enrich:`` — what is a KubeVirt event, how long migrations are followed, what is added."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from otelkv.config.values import Duration, positive
from otelkv.errors import ConfigError

__all__ = ["EnrichConfig"]

_TEN_YEARS: Final = 10 * 365 * 86400.0


@dataclass
class EnrichConfig:
    """What is a KubeVirt event, and what to do with the rest."""

    kinds: list[str] = field(default_factory=lambda: ["VirtualMachineInstance", "VirtualMachineInstanceMigration"])
    service_name: str = "kubevirt-events"
    drop_others: bool = False
    #: Migrations the tracker remembers, and for how long without an event (event time).
    max_migrations: int = 10_000
    migration_ttl_seconds: Duration = 6 * 3600.0
    #: Delivered (uid, count) keys remembered to drop exact duplicates.
    dedup_window: int = 50_000
    # -- migration objects and summaries --
    #: Forward the k8sobjects records of VirtualMachineInstanceMigration objects, or only read them.
    forward_objects: bool = False
    #: One kubevirt.migration.summary record per migration that ends.
    summaries: bool = True

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first wrong ``enrich.`` key."""
        if not self.kinds or not all(self.kinds):
            raise ConfigError("enrich.kinds: must list at least one object kind")
        if not self.service_name:
            raise ConfigError("enrich.service_name: must not be empty")
        for key in ("max_migrations", "migration_ttl_seconds", "dedup_window"):
            positive(f"enrich.{key}", getattr(self, key))
        if self.migration_ttl_seconds > _TEN_YEARS:  # timedelta would overflow far beyond it
            raise ConfigError(
                f"enrich.migration_ttl_seconds: at most {_TEN_YEARS:.0f} (ten years), "
                f"got {self.migration_ttl_seconds!r}"
            )
