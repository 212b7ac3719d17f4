"""docs/cli.md and the README's CLI section are checked: every ``otelkv`` command line in a ``sh``
block parses with the real parser, and every ``console`` block (``$ otelkv …`` then its output)
prints exactly what the command prints."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from otelkv.commands.parser import build_parser
from tests.conftest import ROOT

PAGES = (ROOT / "docs" / "cli.md", ROOT / "README.md")


def command_lines() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), re.S):
            for line in block.splitlines():
                command = line.split(" # ")[0].split(" > ")[0].strip()
                if "otelkv " in command:
                    found.append((page.name, command[command.index("otelkv ") :]))
    return found


def console_blocks() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "cli.md").read_text()
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```console\n\$ (.*?)\n(.*?)```", text, re.S)]


def test_the_docs_show_commands_and_outputs() -> None:
    assert len(command_lines()) >= 10 and len(console_blocks()) >= 3


@pytest.mark.parametrize(("page", "command"), command_lines(), ids=[c for _, c in command_lines()])
def test_every_command_line_parses(page: str, command: str) -> None:
    words = shlex.split(command)
    assert words[0] == "otelkv", page
    build_parser().parse_args(words[1:])  # a bad flag or value exits 2 here


@pytest.mark.parametrize(("command", "output"), console_blocks(), ids=[c for c, _ in console_blocks()])
def test_every_console_block_is_what_the_command_prints(command: str, output: str) -> None:
    words = shlex.split(command)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")} | {"PYTHONPATH": str(ROOT)}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "otelkv"
    done = subprocess.run(
        [sys.executable, "-m", "otelkv", *words[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == output


def test_the_queries_shown_are_the_queries_sent() -> None:
    """docs/cli.md shows the LogQL otelkv sends (tests/test_deploy.py parses every ``logql`` block
    of the docs with Grafana's grammar)."""
    from otelkv.commands.loki_history import EVENTS_QUERY, SUMMARY_QUERY, WARNINGS_QUERY  # noqa: PLC0415

    shown = [b.strip() for b in re.findall(r"```logql\n(.*?)```", (ROOT / "docs" / "cli.md").read_text(), re.S)]
    assert shown == [SUMMARY_QUERY, EVENTS_QUERY, WARNINGS_QUERY]
