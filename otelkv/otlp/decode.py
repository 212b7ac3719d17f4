"""Decode an OTLP protobuf logs request, however deep its values are (upb's own limit is 100
levels: a valid record with 32 kvlist levels passes here); :class:`BadRequest` naming the problem
otherwise. The receivers, the queue sender and dead-letter replay all decode with it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from google.protobuf import descriptor
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.errors import BadRequest

__all__ = ["MAX_PROTO_DEPTH", "decode_protobuf", "message_depth", "read_varint"]

#: upb (protobuf's C core) refuses messages nested deeper than 100 levels; an OTLP kvlist level
#: is 3 (AnyValue, KeyValueList, KeyValue), so a valid record with 32 kvlist levels is refused.
#: Such a request is decoded again with upb's limit lifted, once this walk has shown it to be
#: well-formed and at most this deep (so that upb's recursion stays small).
MAX_PROTO_DEPTH: Final = 400
_allow_deep: Callable[[bool], None] | None
try:
    from google._upb._message import SetAllowOversizeProtos as _upb_allow

    _allow_deep = _upb_allow
except ImportError:  # another protobuf backend: its own limits stand
    _allow_deep = None
# upb's setting is process-wide: receive-side decodes take this lock, so that a hostile request is
# never decoded while the limit is lifted for a walked one.
_DECODE: Final = threading.Lock()


def decode_protobuf(payload: bytes) -> ExportLogsServiceRequest:
    """An OTLP protobuf logs request, however deep its values (up to :data:`MAX_PROTO_DEPTH`);
    :class:`BadRequest` naming the problem otherwise."""
    try:
        with _DECODE:
            return ExportLogsServiceRequest.FromString(payload)
    except DecodeError as error:
        failure: Exception = error
    except Exception as error:  # protobuf raises others for some malformed input
        raise BadRequest(f"malformed ExportLogsServiceRequest: {error}") from error
    depth = message_depth(payload, ExportLogsServiceRequest.DESCRIPTOR, MAX_PROTO_DEPTH)
    if depth is None or depth <= 100 or _allow_deep is None:  # malformed, too deep, or not a depth matter
        raise BadRequest(f"malformed ExportLogsServiceRequest: {failure}") from failure
    with _DECODE:
        _allow_deep(True)
        try:
            return ExportLogsServiceRequest.FromString(payload)
        except Exception as error:
            raise BadRequest(f"malformed ExportLogsServiceRequest: {error}") from error
        finally:
            _allow_deep(False)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("cut varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def message_depth(payload: bytes, message: descriptor.Descriptor, limit: int) -> int | None:
    """How deep messages nest in ``payload`` (wire format of ``message``), walked without
    recursion; None when it is malformed or deeper than ``limit``."""
    stack = [(message, len(payload))]
    pos, deepest = 0, 1
    try:
        while stack:
            current, end = stack[-1]
            if pos == end:
                stack.pop()
                continue
            key, pos = read_varint(payload, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = read_varint(payload, pos)
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            elif wire == 2:
                length, pos = read_varint(payload, pos)
                field = current.fields_by_number.get(number)
                if pos + length > end:
                    return None
                if field is not None and field.message_type is not None:
                    stack.append((field.message_type, pos + length))
                    deepest = max(deepest, len(stack))
                    if deepest > limit:
                        return None
                    continue
                pos += length
            else:
                return None  # groups are not OTLP
            if pos > end:
                return None
    except ValueError:
        return None
    return deepest
