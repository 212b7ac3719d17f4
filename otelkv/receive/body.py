"""Request bodies: gzip (every member, nothing after), OTLP/JSON; pure functions, no I/O.

Each step charges the memory it makes to a :class:`otelkv.pipeline.Reservation`, so that a gzip
bomb or a request that decodes large is refused before it is in memory, not after.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from typing import Any, Final

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelkv.errors import BadRequest
from otelkv.pipeline.inflight import Charge
from otelkv.receive.charge import DECODE_COST

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
#: Inflate in steps of this much, charging each to the reservation before the next.
_STEP: Final = 256 * 1024
#: What a gzip body costs, in multiples of its inflated size, charged ahead before it is inflated:
#: its inflated chunks, their joined copy, then decoding (:data:`otelkv.receive.charge.DECODE_COST`).
#: OTLP/JSON decoding is charged differently, and draws on it the same way.
INFLATE_COST: Final = 2 + DECODE_COST
#: The smallest gzip member: a 10-byte header and an 8-byte trailer.
_GZIP_LEAST: Final = 18
#: JSON nesting refused: Python's json parser ends near 1000 levels with RecursionError (answered as
#: malformed, never retryable); the message may nest this deep (ParseDict's limit). An OTLP kvlist
#: level is 4 JSON levels; 32 of them (upb's own limit for protobuf) are 136 deep in all.
MAX_JSON_DEPTH: Final = 160
#: What decoding JSON costs beyond the objects, in multiples of the body: the body and its text (a str
#: of up to 4 bytes a character, 1 for ASCII). The re-encoded request is charged by the receiver.
JSON_TEXT_COST: Final = 3
#: What one JSON object costs while it is decoded: its dict, then its message (measured with VmHWM:
#: 206 bytes an object for empty records ``{}``, 284 for records of a body and two attributes;
#: docs/reliability.md). Enriching on the reference path is charged apart, by the pipeline.
JSON_OBJECT_COST: Final = 320
#: The parser is charged for its objects in steps of this many (at most 320 KiB ahead of the cap).
JSON_CHARGE_EVERY: Final = 1024


def gunzip(body: bytes, limit: int, charge: Charge) -> bytes:
    """Every gzip member of ``body``, at most ``limit`` bytes in all; :class:`BadRequest` for
    anything else (not gzip, cut short, bytes after the last member, too large).

    What the gzip trailer declares (:func:`declared_size`) is charged ahead for inflating and
    decoding (:data:`INFLATE_COST` x it), so a request that cannot fit now is refused before any of
    it is inflated: 16 clients whose requests inflate to 4 MiB each inflated up to the cap's free
    room before they were refused, and now cost nothing (docs/reliability.md#memory). A trailer that
    understates the size gains nothing: what it did not declare is charged step by step.
    """
    charge.ahead(INFLATE_COST * declared_size(body, limit))
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


#: The most deflate inflates a byte to (zlib's technical note: 1032:1, for long runs of one byte).
DEFLATE_MAX_RATIO: Final = 1032


def declared_size(body: bytes, limit: int) -> int:
    """The size the gzip trailer of ``body`` declares (ISIZE: its last member's length modulo 2^32),
    or 0 when ``body`` is not gzip or declares more than ``limit`` (refused as too large once
    inflating reaches it). zlib checks it against what it inflated, so a valid body cannot overstate
    it; a body past 4 GiB (a bomb) or of several members understates it: never a bound, only what
    to charge first. Nor more than deflate can make of ``body`` (:data:`DEFLATE_MAX_RATIO`): a
    41-byte body that lies in its trailer must not hold 40 MiB of the cap until zlib finds out."""
    if len(body) < _GZIP_LEAST or not body.startswith(b"\x1f\x8b"):
        return 0
    size = int.from_bytes(body[-4:], "little")
    return min(size, DEFLATE_MAX_RATIO * len(body)) if size <= limit else 0


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


#: A JSON escape of a UTF-16 surrogate (``\\ud800``-``\\udfff``): only then can a string hold a lone one.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _fixed(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


def _without_lone_surrogates(data: Any) -> Any:
    """``data`` with each lone surrogate in its strings and keys read as U+FFFD.

    JSON may escape one (``"\\ud800"``); no UTF-8 string holds it, so protobuf refuses the whole
    request. Go's ``encoding/json`` reads it as U+FFFD (pairs stay one character, as ``json``
    already joined them); so does otelkv, and the other records of the request are kept. Walked
    without recursion (the nesting is bounded by the parser, not by this walk).
    """
    if isinstance(data, str):
        return _fixed(data)
    todo: list[Any] = [data]
    while todo:
        node = todo.pop()
        items: list[tuple[Any, Any]]
        if isinstance(node, dict):
            for key in [k for k in node if _LONE_SURROGATE.search(k)]:
                node[_fixed(key)] = node.pop(key)
            items = list(node.items())
        elif isinstance(node, list):
            items = list(enumerate(node))
        else:
            continue
        for index, value in items:
            if isinstance(value, str):
                if _LONE_SURROGATE.search(value):
                    node[index] = _fixed(value)
            elif isinstance(value, dict | list):
                todo.append(value)
    return data


def decode_json(body: bytes, charge: Charge) -> ExportLogsServiceRequest:
    """An OTLP/JSON logs request; :class:`BadRequest` naming the problem otherwise.

    The JSON text is charged as it is decoded (:data:`JSON_TEXT_COST` x its size), and every
    :data:`JSON_CHARGE_EVERY` objects the parser builds are charged :data:`JSON_OBJECT_COST` each
    before the next are made: a small body of many empty objects (a 4 KiB gzip of 1.4 million
    ``{}``) is refused while it is being parsed, at a bounded cost, instead of taking hundreds of
    MiB. Nesting deeper than Python's recursion limit, or than :data:`MAX_JSON_DEPTH` for the
    message, is refused as malformed.
    """
    charge.add(JSON_TEXT_COST * len(body))
    try:
        text = body.decode()
    except UnicodeDecodeError as error:
        raise BadRequest(f"body is not JSON: {error}") from error
    built = 0

    def counted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal built
        built += 1
        if built % JSON_CHARGE_EVERY == 0:
            charge.add(JSON_CHARGE_EVERY * JSON_OBJECT_COST)
        return dict(pairs)

    try:
        data = json.loads(text, object_pairs_hook=counted)
    except RecursionError:
        raise BadRequest(f"body is not OTLP/JSON: nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as error:
        raise BadRequest(f"body is not JSON: {error}") from error
    if _SURROGATE_ESCAPE.search(text):
        data = _without_lone_surrogates(data)
    del text
    charge.add(built % JSON_CHARGE_EVERY * JSON_OBJECT_COST)
    if not isinstance(data, dict):
        raise BadRequest(f"body is not OTLP/JSON: a JSON {type(data).__name__}, not an object")
    _hex_ids_to_base64(data)
    try:
        return json_format.ParseDict(
            data, ExportLogsServiceRequest(), ignore_unknown_fields=True, max_recursion_depth=MAX_JSON_DEPTH
        )
    except (json_format.ParseError, TypeError, ValueError, binascii.Error, RecursionError) as error:
        raise BadRequest(f"not an OTLP/JSON ExportLogsServiceRequest: {error}") from error
