"""What one enrichment is asked to do (:class:`EnrichOptions`) and what it did (:class:`EnrichResult`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

__all__ = ["EnrichOptions", "EnrichResult", "first_time"]


@dataclass(frozen=True, slots=True)
class EnrichOptions:
    """What counts as a KubeVirt event, and what to do with the rest."""

    kinds: frozenset[str] = frozenset({"VirtualMachineInstance", "VirtualMachineInstanceMigration"})
    service_name: str = "kubevirt-events"
    drop_others: bool = False
    #: Forward the ``k8sobjects`` records of migration objects (after reading them) or consume them.
    forward_objects: bool = False
    #: Add one ``kubevirt.migration.summary`` record per migration that ends.
    summaries: bool = True


@dataclass(slots=True)
class EnrichResult:
    """The enriched request, what happened to its records, and the keys to mark delivered.

    The request is held as a message (the reference path builds one) or as its wire bytes (the
    native core writes those); :attr:`request` and :attr:`payload` give either, converting once.
    """

    message: ExportLogsServiceRequest | None = None
    wire: bytes | None = None
    received: int = 0
    enriched: int = 0
    passed: int = 0
    dropped_others: int = 0
    duplicates: int = 0
    unreadable: int = 0
    #: Migration object records read and not forwarded (``forward_objects: false``).
    objects: int = 0
    summaries: int = 0
    keys: list[Hashable] = field(default_factory=list)

    @property
    def request(self) -> ExportLogsServiceRequest:
        """The enriched request as a message."""
        if self.message is None:
            self.message = ExportLogsServiceRequest.FromString(self.wire or b"")
        return self.message

    @property
    def payload(self) -> bytes:
        """The enriched request on the wire."""
        if self.wire is None:
            self.wire = self.request.SerializeToString()
        return self.wire

    @property
    def forwarded(self) -> int:
        """Records in the enriched request."""
        return self.enriched + self.passed + self.summaries


def first_time(
    key: Hashable | None, seen: set[Hashable], delivered: Callable[[Hashable], bool], result: EnrichResult
) -> bool:
    """False for a record already in this request or delivered before (counted a duplicate);
    else its key (if it has one) is remembered, to be marked delivered with the request."""
    if key is None:
        return True
    if key in seen or delivered(key):
        result.duplicates += 1
        return False
    seen.add(key)
    result.keys.append(key)
    return True
