"""Text otelkv did not write (names, reasons, a server's answer), made safe to print to a terminal.

A VM name, a failure reason or a Loki error body may carry terminal escape sequences
(``ESC ] 0 ; title BEL``, ``ESC [ 2 J``) or bidi controls that reorder what is shown. Before such
text is cut to width or coloured by otelkv, every C0 and C1 control, DEL, and the bidi embedding,
override and isolate controls (U+202A-U+202E, U+2066-U+2069) are shown escaped, as Python writes
them (``\\x1b``, ``\\u202e``). JSON, JSON Lines, YAML and HTML keep the data as it is: their
formats escape it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["terminal_text"]

_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text: str) -> str:
    """``text`` with every control character shown escaped (``\\x1b``); other text unchanged."""
    return _UNSAFE.sub(_escaped, text)
