"""``otelkv serve --config`` in a child process: its ports read from its start-up log line, its
memory from /proc (for the tests that measure what a request costs the real server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class ServeChild:
    """A running ``otelkv serve``; ``grpc`` is its ``127.0.0.1:port``, ``http_port`` its OTLP/HTTP port."""

    def __init__(self, config_path: Path) -> None:
        command = [sys.executable, "-m", "otelkv", "serve", "--config", str(config_path)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if '"otelkv serving"' in line:
                started = json.loads(line)
                self.grpc = f"127.0.0.1:{started['grpc_port']}"
                self.http_port = int(started["http_port"])
                break
        else:
            pytest.fail("otelkv serve did not start")
        threading.Thread(target=self.process.stderr.read, daemon=True).start()  # keep the pipe drained

    def status(self, field: str) -> int:
        """A figure of /proc/<pid>/status in bytes (``VmRSS``, ``VmHWM``)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def stop(self) -> None:
        """Kill it (safe twice)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
