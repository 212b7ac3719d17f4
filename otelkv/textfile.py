"""Read a text file the way users hand them to otelkv: UTF-8, or UTF-16/32 with a BOM.

PowerShell's ``kubectl get events -o json > events.json`` writes UTF-16 with a byte-order
mark; ``kubectl`` itself writes UTF-8. Anything else is refused naming the file and the offset,
never with a traceback.
"""

from __future__ import annotations

import codecs
import os
import stat
import sys
from pathlib import Path
from typing import Final

from otelkv.errors import UserError

#: Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class TextError(UserError, ValueError):
    """The bytes are not text otelkv can read; the message names the source."""


def decode(data: bytes, source: str) -> str:
    """``data`` as text: by its byte-order mark, else strict UTF-8; NUL bytes are refused."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise TextError(
            f"{source}: not {encoding.upper().removesuffix('-SIG')} text (byte {error.start}); "
            "save it as UTF-8 (or UTF-16 with a byte-order mark)"
        ) from None
    if "\x00" in text:
        raise TextError(f"{source}: binary data (a NUL character), not text")
    return text


#: The largest text file otelkv reads (events or configuration): /dev/zero or a runaway pipe ends
#: in one line, not in gigabytes of memory.
MAX_TEXT_BYTES: Final = 256 * 1024 * 1024


def read_text(path: str | Path, limit: int = MAX_TEXT_BYTES) -> str:
    """The text of ``path`` (``-``: standard input), at most ``limit`` bytes; OSError when it cannot
    be read, :class:`TextError` when it is longer."""
    source = "stdin" if str(path) == "-" else str(path)
    if str(path) == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        with Path(path).open("rb") as file:
            data = file.read(limit + 1)
    if len(data) > limit:
        raise TextError(f"{source}: larger than {limit >> 20} MiB; not a file otelkv reads whole")
    return decode(data, source)


#: The largest credential or CA bundle otelkv reads (a token, a password, PEM certificates: a
#: system CA bundle is ~200 KiB).
MAX_SECRET_BYTES: Final = 1024 * 1024


def read_small(path: str | Path, limit: int = MAX_SECRET_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit``: OSError when it cannot be read,
    :class:`TextError` naming it when it is not a regular file (``/dev/zero``, a FIFO: read whole,
    they never end) or is longer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block the open
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TextError(f"{path}: not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise TextError(f"{path}: larger than {limit >> 10} KiB; not a credential or a CA file")
    return data
