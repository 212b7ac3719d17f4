"""Request bodies: gzip (every member, nothing after), OTLP/JSON; pure functions, no I/O.

Each step charges the memory it makes to a :class:`otelkv.pipeline.Reservation`, so that a gzip
bomb or a request that decodes large is refused before it is in memory, not after.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import zlib
from collections.abc import Callable
from typing import Any, Final, Protocol

from google.protobuf import descriptor, json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.errors import BadRequest

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
#: Inflate in steps of this much, charging each to the reservation before the next.
_STEP: Final = 256 * 1024
#: JSON nesting refused before parsing: Python's json ends near 1000 levels with RecursionError
#: (answered 503 before, so the collector retried a request that can never pass). An OTLP kvlist
#: level is 4 JSON levels; 32 of them (upb's own limit for protobuf) are 136 deep in all.
MAX_JSON_DEPTH: Final = 160


class Charge(Protocol):
    """Where the memory a step makes is counted (:meth:`otelkv.pipeline.Reservation.add`)."""

    def add(self, size: int) -> None: ...


class Unsupported(BadRequest):
    """An unsupported Content-Type or Content-Encoding (415)."""


def gunzip(body: bytes, limit: int, charge: Charge) -> bytes:
    """Every gzip member of ``body``, at most ``limit`` bytes in all; :class:`BadRequest` for
    anything else (not gzip, cut short, bytes after the last member, too large)."""
    out: list[bytes] = []
    size = 0
    data = body
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            while data and not inflater.eof:
                chunk = inflater.decompress(data, _STEP)
                data = inflater.unconsumed_tail
                size += len(chunk)
                if size > limit:
                    raise BadRequest(f"decompressed body exceeds max_message_bytes {limit}", too_large=True)
                charge.add(len(chunk))
                out.append(chunk)
        except zlib.error as error:
            raise BadRequest(f"body is not valid gzip: {error}") from error
        if not inflater.eof:
            raise BadRequest("body is not valid gzip: the stream is cut short")
        data = inflater.unused_data
        if not data:
            break
        if not data.startswith(b"\x1f\x8b"):  # another member, or garbage after the stream
            raise BadRequest(f"body is not valid gzip: {len(data)} bytes after the gzip stream")
    charge.add(size)  # the joined copy
    return b"".join(out)


def _depth(text: str) -> int:
    """The deepest nesting of JSON arrays and objects in ``text`` (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _list(node: Any, key: str) -> list[Any]:
    """``node[key]`` when ``node`` is an object and that is a list; else nothing (ParseDict then
    names what is wrong with it)."""
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, list) else []


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes traceId/spanId in hex; protobuf's JSON mapping wants base64."""
    for resource in _list(node, "resourceLogs"):
        for scope in _list(resource, "scopeLogs"):
            for record in _list(scope, "logRecords"):
                for key in ("traceId", "spanId"):
                    value = record.get(key) if isinstance(record, dict) else None
                    if isinstance(value, str) and value:
                        try:
                            record[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError as error:
                            raise BadRequest(f"logRecords.{key}: not hex: {value[:40]!r}") from error


def decode_json(body: bytes) -> ExportLogsServiceRequest:
    """An OTLP/JSON logs request; :class:`BadRequest` naming the problem otherwise."""
    try:
        text = body.decode()
    except UnicodeDecodeError as error:
        raise BadRequest(f"body is not JSON: {error}") from error
    deepest = _depth(text)
    if deepest > MAX_JSON_DEPTH:
        raise BadRequest(f"body is not OTLP/JSON: nested {deepest} levels deep, more than {MAX_JSON_DEPTH}")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise BadRequest(f"body is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise BadRequest(f"body is not OTLP/JSON: a JSON {type(data).__name__}, not an object")
    _hex_ids_to_base64(data)
    try:
        return json_format.ParseDict(data, ExportLogsServiceRequest(), ignore_unknown_fields=True,
                                     max_recursion_depth=MAX_JSON_DEPTH)  # fmt: skip
    except (json_format.ParseError, TypeError, ValueError, binascii.Error, RecursionError) as error:
        raise BadRequest(f"not an OTLP/JSON ExportLogsServiceRequest: {error}") from error


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


def _varint(data: bytes, pos: int) -> tuple[int, int]:
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
            key, pos = _varint(payload, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = _varint(payload, pos)
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            elif wire == 2:
                length, pos = _varint(payload, pos)
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
