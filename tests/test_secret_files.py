"""Credential and CA files given on the command line are read bounded: a device or a FIFO is
'not a regular file' in one line (found by probing: ``--password-file /dev/zero`` took 12 GB in
15 s, and a FIFO would block for ever), a huge file is refused by its size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otelkv.textfile import MAX_SECRET_BYTES, TextError, read_small
from tests.conftest import EXAMPLE, ROOT

COMMANDS = {
    "replay token": ["replay", str(EXAMPLE), "--to", "127.0.0.1:1", "--bearer-token-file", "{f}"],
    "replay CA": ["replay", str(EXAMPLE), "--to", "127.0.0.1:1", "--tls", "--ca-file", "{f}"],
    "loki password": ["migrations", "--loki", "http://127.0.0.1:1", "--username", "u", "--password-file", "{f}"],
    "loki token": ["migrations", "--loki", "http://127.0.0.1:1", "--bearer-token-file", "{f}"],
}


def run(words: list[str], path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otelkv", *(w.replace("{f}", path) for w in words)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,  # a bound, not a measure: before, /dev/zero ran until memory ran out
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_dev_zero_is_not_a_regular_file(command: str) -> None:
    done = run(COMMANDS[command], "/dev/zero")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().endswith("/dev/zero: not a regular file") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["replay token", "loki password"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(command: str, tmp_path: Path) -> None:
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    done = run(COMMANDS[command], str(fifo))
    assert done.returncode == 2 and "not a regular file" in done.stderr


def test_a_file_past_the_bound_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "token"
    big.write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(TextError, match="larger than 1024 KiB"):
        read_small(big)
    big.write_bytes(b"x" * MAX_SECRET_BYTES)
    assert len(read_small(big)) == MAX_SECRET_BYTES
