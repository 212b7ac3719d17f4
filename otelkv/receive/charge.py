"""What a request costs in memory, charged to the in-flight cap before it is decoded
(:class:`otelkv.pipeline.InflightBytes`; the figures are in docs/reliability.md)."""

from __future__ import annotations

from typing import Final

from otelkv.otlp import native

__all__ = ["DECODE_COST", "MESSAGE_COST", "decode_charge"]

#: What decoding, enriching and re-encoding a request costs in memory, in multiples of its
#: protobuf size (measured: decode 1x, enrich 4x, encode and gzip 2x; docs/reliability.md). A
#: request is charged this before it is decoded, so the in-flight cap bounds memory, not bytes.
DECODE_COST: Final = 8
#: What upb takes for each message it decodes (measured: 123 bytes for an empty record). A request
#: of many tiny messages (2,000,000 empty records fit in 4 MiB: +250 MiB decoded) is charged by
#: their count instead, where the compiled core can count them before decoding.
MESSAGE_COST: Final = 128


def decode_charge(payload: bytes) -> int:
    """What decoding, enriching and re-encoding ``payload`` is charged to the in-flight cap: 8x its
    size, or 128 bytes a message when that is more (counted by the compiled core, without decoding;
    on the reference path, by size alone)."""
    core = native.core()
    messages = core.count_messages(payload) if core is not None else -1
    return max(DECODE_COST * len(payload), MESSAGE_COST * messages)
