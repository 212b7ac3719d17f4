"""The duplicate window kept on disk beside the store, so that a batch the collector sends again
after otelkv restarted (its answer was lost) is still recognised as delivered.

A JSON file next to ``delivery.store_path`` (``<store_path>.delivered.json``, mode ``0600``):
``{"version": 1, "keys": [oldest, …, newest]}``, written whole to a temporary file, fsynced and
renamed over the old one, by the tracker's saver (``tracker_state.PersistentTracker``) in the
same save as the migrations: the same cadence, and the migrations file first, so a crash between
the two renames leaves a window no newer than the migrations (a key in the window is never a
record whose event the saved tracker has not seen).

Keys are opaque to this module: hashable tuples (nested too) of ``str``, ``int``, ``bool``,
``float``, ``bytes`` and ``None``, as ``otelkv.otlp.record_keys`` builds them, whatever they
hold. JSON keeps each of these: a tuple is written as a list (no key holds a list: it is not
hashable), ``bytes`` as ``{"b": "<base64>"}``, a float that JSON cannot write (NaN, infinity) as
``{"f": "<repr>"}``. A key of any other type is skipped when saving, counted, and named once in a
warning.

Bounded in bytes: a save that would pass ``max_bytes`` keeps the newest keys that fit (logged
once); a file larger than ``max_bytes``, or holding more JSON values than a window of
``enrich.dedup_window`` keys may (:func:`key_budget`: a file of ``[0]`` keys within 8 MiB took
392 MiB to parse), is not parsed. A file that is missing starts an empty
window silently; one that is unreadable, damaged (truncated, garbage, wrong types) or too large
is logged in one line and an empty window is used — otelkv starts, never refuses to.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import stat
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from otelkv.delivery.files import write_private
from otelkv.delivery.json_budget import loads_within

__all__ = [
    "SUFFIX",
    "KeySource",
    "SavedWindow",
    "UnsavableKey",
    "decode_key",
    "dump_keys",
    "encode_key",
    "encode_keys",
    "key_budget",
    "load_keys",
    "restore",
    "window_path",
]

log = logging.getLogger(__name__)

SUFFIX: Final = ".delivered.json"
VERSION: Final = 1
#: How deep a key may nest when saved one by one (a summary's key holds its record's key: depth 2
#: today); reading back is bounded by the JSON parser's own depth limit instead.
MAX_DEPTH: Final = 32
_HEAD: Final = b'{"version":1,"keys":['
#: The structural tokens (``[``, ``{``, ``,``) a saved key may take, with half again as margin:
#: the largest key otelkv makes, a summary's of a migration object's record from a cluster,
#: ``["kubevirt.migration.summary",["object",uid,version,watch,cluster]]`` and its comma, takes 8;
#: an event's ``[uid,count,cluster]`` 4. :func:`key_budget` bounds a file read back by it.
TOKENS_PER_KEY: Final = 8
MIN_TOKENS: Final = 4096
#: Keys encoded at once when saving (a chunk of the longest keys is 0.4 MB of text).
CHUNK: Final = 1024
_TAIL: Final = b"]}"


def window_path(store_path: str) -> Path:
    """Where the duplicate window of the store at ``store_path`` lives."""
    return Path(store_path + SUFFIX)


class UnsavableKey(TypeError):
    """A key holds something other than str, int, bool, float, bytes, None or tuples of them."""


class KeySource(Protocol):
    """What the saver reads: the window's keys, oldest first, and a number that changes with them."""

    @property
    def generation(self) -> int:
        """Changes whenever a key is added."""

    def snapshot(self) -> list[Hashable]:
        """The keys now, oldest first (a copy)."""


def encode_key(key: Any, depth: int = 0) -> Any:
    """``key`` as JSON-ready data; :class:`UnsavableKey` naming the first part that is not savable."""
    if key is None or isinstance(key, str | bool | int):
        return key
    if isinstance(key, float):
        return key if math.isfinite(key) else {"f": repr(key)}
    if isinstance(key, bytes):
        return {"b": base64.b64encode(key).decode("ascii")}
    if isinstance(key, tuple):
        if depth >= MAX_DEPTH:
            raise UnsavableKey(f"a key nested deeper than {MAX_DEPTH}")
        return [encode_key(part, depth + 1) for part in key]
    raise UnsavableKey(f"a key holding a {type(key).__name__}")


def decode_key(data: Any) -> Hashable:
    """The key :func:`encode_key` wrote; ValueError naming what is wrong."""
    if data is None or isinstance(data, str | bool | int | float):
        return data
    if isinstance(data, list):
        return tuple(decode_key(part) for part in data)
    if isinstance(data, dict) and len(data) == 1:
        if isinstance(data.get("b"), str):
            try:
                return base64.b64decode(data["b"], validate=True)
            except binascii.Error:
                raise ValueError("a bytes key that is not base64") from None
        if isinstance(data.get("f"), str) and data["f"] in ("nan", "inf", "-inf"):
            return float(data["f"])
    raise ValueError(f"not a key: {str(data)[:80]}")


def dump_keys(keys: Sequence[Hashable], max_bytes: int, *, chunk: int = CHUNK) -> tuple[bytes, int, list[str]]:
    """The file's bytes for ``keys`` (oldest first), at most ``max_bytes``: the newest keys that
    fit. Also how many keys it holds, and why any were left out (one text per kind of key).
    (:func:`encode_keys`, joined.)"""
    pieces, count, problems = encode_keys(keys, max_bytes, chunk=chunk)
    return b"".join(pieces), count, problems


def encode_keys(keys: Sequence[Hashable], max_bytes: int, *, chunk: int = CHUNK) -> tuple[list[bytes], int, list[str]]:
    """:func:`dump_keys` as pieces to write in turn, encoded newest first a chunk at a time and
    stopped once ``max_bytes`` is reached: never more than the file's text and one chunk's, where
    encoding the whole window first took twice the window's text (16 MB for 8 MiB written, with
    the longest keys) before finding it too large.

    A ``chunk`` of keys (:data:`CHUNK`) is one ``json.dumps`` (17 ms for 50,000 keys, ten times less
    than key by key); key by key only for a chunk that fails (a key to skip, a NaN) or passes
    ``max_bytes``."""
    room = max_bytes - len(_HEAD) - len(_TAIL)
    newest_first: list[bytes] = []  # chunks' texts, each oldest first inside
    skipped: dict[str, int] = {}
    size = kept = 0
    end = len(keys)
    full = False
    while end > 0 and not full:
        start = max(0, end - chunk)
        part = keys[start:end]
        text = _chunk_text(part)
        if text is not None and size + len(text) + (1 if size else 0) <= room:
            newest_first.append(text)
            size += len(text) + (1 if size else 0)
            kept += len(part)
            end = start
            continue
        items: list[bytes] = []
        for key in reversed(part):  # key by key: the newest first, until the room is gone
            try:
                item = _compact(encode_key(key))
            except (UnsavableKey, ValueError) as error:
                skipped[str(error)] = skipped.get(str(error), 0) + 1
                end -= 1
                continue
            if size + len(item) + (1 if size else 0) > room:
                full = True
                break
            items.append(item)
            size += len(item) + (1 if size else 0)
            kept += 1
            end -= 1
        if items:
            newest_first.append(b",".join(reversed(items)))
    problems = [f"{count} keys skipped: {what} (not savable)" for what, count in skipped.items()]
    if end > 0:  # keep the newest that fit: they are the ones a retry may still bring
        problems.append(f"{end} oldest keys left out: the window passes {max_bytes} bytes")
    pieces = [_HEAD]
    for text in reversed(newest_first):  # the commas apart: joining would copy the texts
        pieces += (text, b",")
    if newest_first:
        pieces.pop()
    pieces.append(_TAIL)
    return pieces, kept, problems


def _chunk_text(chunk: Sequence[Hashable]) -> bytes | None:
    """The keys of ``chunk`` as JSON, comma-separated (no brackets); None when one is not savable."""
    try:
        text = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_bytes).encode(
            "utf-8", "surrogatepass"
        )
    except (UnsavableKey, ValueError, RecursionError):
        return None  # a key to skip, a NaN: key by key
    return text[1:-1]


def _bytes(value: Any) -> Any:
    """``json.dumps``'s ``default``: bytes as ``{"b": …}``; anything else is not savable."""
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode("ascii")}
    raise UnsavableKey(f"a key holding a {type(value).__name__}")


def _compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


def key_budget(max_keys: int) -> int:
    """The JSON values (:mod:`~otelkv.delivery.json_budget`'s structural tokens) a saved window of
    ``max_keys`` keys may hold: :data:`TOKENS_PER_KEY` a key, and :data:`MIN_TOKENS` at least."""
    return MIN_TOKENS + max_keys * TOKENS_PER_KEY


def load_keys(path: Path, max_bytes: int, max_keys: int | None = None) -> list[Hashable]:
    """The keys saved at ``path``, oldest first (only the newest ``max_keys``); ``[]``, logged in
    one line, when the file is missing (silently), too large, unreadable or damaged. With
    ``max_keys``, a file holding more JSON values than :func:`key_budget` allows is damaged: it is
    not parsed (a file of tiny keys within ``max_bytes`` took 392 MiB to parse)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the start, a device never end
            raise ValueError("not a regular file")
        size = info.st_size
        if size > max_bytes:
            raise ValueError(f"{size} bytes, more than delivery.saved_window_max_bytes ({max_bytes})")
        with path.open("rb") as file:
            data = file.read(size + 1)  # not max_bytes + 1: read() allocates what it is asked for
        if len(data) > size:  # it grew since stat: otelkv holds the store's lock, so not otelkv
            raise ValueError("the file changed while it was read")
        budget = key_budget(max_keys) if max_keys is not None else len(data)
        state = loads_within(data, budget, f"what a window of enrich.dedup_window {max_keys} keys holds")
        del data
        if not isinstance(state, dict) or state.get("version") != VERSION or not isinstance(state.get("keys"), list):
            raise ValueError(f"not a saved duplicate window of version {VERSION}")
        items: list[Any] = state.pop("keys")
        del state
        if max_keys is not None and len(items) > max_keys:
            del items[: len(items) - max_keys]  # a smaller window than the one saved keeps the newest
        keys = []
        for index, item in enumerate(items):
            keys.append(decode_key(item))
            items[index] = None  # the parsed lists go as their keys are made: never both whole
        for key in keys:
            hash(key)
    except FileNotFoundError:
        return []
    except Exception as error:  # any damage (garbage, wrong types, too deep, too large) starts empty
        log.warning(
            "ignoring the saved duplicate window in %s (starting with an empty one): %s: %s",
            path,
            type(error).__name__,
            error,
        )
        return []
    return keys


class SavedWindow:
    """Saves a :class:`KeySource` to ``path`` when asked (by the tracker's saver), only when it
    changed; failures and left-out keys are logged once in a streak, not at every save."""

    def __init__(self, path: Path, source: KeySource, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._source = source
        #: What the source holds when this is made was just read back from ``path``: not dirty.
        self._saved_generation: int | None = source.generation
        self._said: set[str] = set()
        #: What the last save wrote: bytes and keys (for the logs and the tests).
        self.last_bytes = 0
        self.last_keys = 0

    @property
    def dirty(self) -> bool:
        """Keys were added since the last save (or since the window was restored)."""
        return self._saved_generation != self._source.generation

    def take(self) -> tuple[int, list[Hashable]]:
        """The source's generation and keys now (the caller takes this before the tracker's
        snapshot, so that every key's record is in the migrations saved with it)."""
        generation = self._source.generation
        return generation, self._source.snapshot()

    def write(self, taken: tuple[int, list[Hashable]]) -> bool:
        """Write what :meth:`take` returned, atomically; False, logged, when the disk refused it."""
        generation, keys = taken
        data, count, problems = encode_keys(keys, self.max_bytes)
        del keys
        for problem in problems:
            kind = problem.split(":", 1)[1]
            if kind not in self._said:
                self._said.add(kind)
                log.warning("saving the duplicate window to %s: %s", self.path, problem)
        try:
            write_private(self.path, data, fsync=True)
        except OSError as error:
            if "write" not in self._said:
                self._said.add("write")
                log.warning("saving the duplicate window to %s failed: %s", self.path, error)
            return False
        self._said.discard("write")
        self._saved_generation = generation
        self.last_bytes, self.last_keys = sum(len(piece) for piece in data), count
        return True

    def save(self) -> bool:
        """:meth:`take` and :meth:`write` at once."""
        return self.write(self.take())


def restore(path: Path, max_bytes: int, size: int) -> Iterable[Hashable]:
    """The newest ``size`` keys saved at ``path`` (a smaller window than the one saved keeps the
    newest), logged at info when there were any."""
    keys = load_keys(path, max_bytes, size)
    if keys:
        log.info("restored %d delivered record keys (the duplicate window) from %s", len(keys), path)
    return keys
