"""The ``otelkv`` command: serve, check-config, replay, migrations, dead-letter.

Every failure a user can cause ends in one line on stderr naming the file, key or address, and
exit status 2; a traceback is a bug. What the line quotes (a file's text, a server's answer) has
its control characters shown escaped (:mod:`.terminal_text`). Each subcommand is a module of
this package with a ``run``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import import_module

from otelkv import config
from otelkv.commands.parser import build_parser
from otelkv.commands.terminal_text import terminal_text
from otelkv.errors import UserError, one_line

__all__ = ["COMMANDS", "main"]

#: Each subcommand and the module that runs it.
COMMANDS = {
    "serve": "serve",
    "check-config": "check_config",
    "replay": "replay",
    "migrations": "migrations",
    "dead-letter": "dead_letter",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    module = import_module(f"otelkv.commands.{COMMANDS[args.command]}")  # only the one that runs
    try:
        return int(module.run(args))
    except config.ConfigError as error:
        shown = "\n".join(terminal_text(line) for line in str(error).split("\n"))  # a list of problems stays one a line
        print(f"otelkv: config: {shown}", file=sys.stderr)
        return 2
    except (UserError, OSError) as error:  # the user gave something wrong: one line, exit 2
        print(f"otelkv: {terminal_text(one_line(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug: still one line, with what to report
        what = terminal_text(one_line(error))
        print(f"otelkv: internal error (please report it): {type(error).__name__}: {what}", file=sys.stderr)
        return 70  # EX_SOFTWARE
