"""Protobuf wire format by hand, for tests and benchmarks that need bytes no encoder writes:
fields out of order, repeated singular fields, floods of empty messages. Reading varints is
otelkv's own (``otelkv.otlp.decode.read_varint``)."""

from __future__ import annotations

from otelkv.otlp.decode import read_varint


def varint(value: int) -> bytes:
    """``value`` as a base-128 varint."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_field(number: int, content: bytes) -> bytes:
    """Field ``number`` holding ``content`` (wire type 2: a message, string or bytes)."""
    return varint(number << 3 | 2) + varint(len(content)) + content


def fields(message: bytes) -> list[bytes]:
    """The top-level fields of a message, each as its bytes (tag included)."""
    out, pos = [], 0
    while pos < len(message):
        start = pos
        key, pos = read_varint(message, pos)
        wire = key & 7
        if wire == 0:
            _, pos = read_varint(message, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            length, pos = read_varint(message, pos)
            pos += length
        out.append(message[start:pos])
    return out


def field_number(field: bytes) -> int:
    """The number of a field given as its bytes."""
    return read_varint(field, 0)[0] >> 3
