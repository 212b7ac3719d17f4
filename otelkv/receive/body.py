"""Request bodies: gzip (every member, nothing after), OTLP/JSON; pure functions, no I/O.

Each step charges the memory it makes to a :class:`otelkv.pipeline.Reservation`, so that a gzip
bomb or a request that decodes large is refused before it is in memory, not after.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any, Final, Protocol

from google.protobuf import json_format
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
        return json_format.ParseDict(
            data, ExportLogsServiceRequest(), ignore_unknown_fields=True, max_recursion_depth=MAX_JSON_DEPTH
        )
    except (json_format.ParseError, TypeError, ValueError, binascii.Error, RecursionError) as error:
        raise BadRequest(f"not an OTLP/JSON ExportLogsServiceRequest: {error}") from error
