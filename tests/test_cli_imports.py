"""Building otelkv's command line loads no table or report code: ``otelkv serve`` builds the same
parser as every command, and what it imports stays in the sidecar's memory for its whole life."""

from __future__ import annotations

import subprocess
import sys


def test_the_parser_imports_no_table_code() -> None:
    code = (
        "import sys\n"
        "from otelkv.commands.parser import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m in ('tabulate', 'otelkv.commands.migrations_table')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
