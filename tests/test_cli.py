"""The otelkv command as a user runs it: real processes, real sockets, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelkv.commands import main
from tests.conftest import EXAMPLE, ROOT
from tests.loki_sink import LokiSink

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def otelkv(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otelkv", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
        timeout=timeout,
        cwd=ROOT,
    )


class Serving:
    """``otelkv serve`` in a child process; its ports read from its JSON start-up log."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "otelkv",
                "serve",
                "--grpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            cwd=ROOT,
        )
        self.logs: list[dict[str, Any]] = []
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.logs.append(json.loads(line))
            if self.logs[-1]["msg"] == "otelkv serving":
                break
        else:
            pytest.fail(f"otelkv serve did not start: {self.logs}")
        self.grpc = f"127.0.0.1:{self.logs[-1]['grpc_port']}"

    def terminate(self, timeout: float = 30) -> tuple[int, str, list[dict[str, Any]]]:
        self.process.send_signal(signal.SIGTERM)
        stdout, stderr = self.process.communicate(timeout=timeout)
        self.logs += [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        return self.process.returncode, stdout, self.logs


@pytest.fixture
def serving_stdout() -> Iterator[Serving]:
    running = Serving()
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def test_serve_replay_sigterm_on_the_embedded_default(serving_stdout: Serving) -> None:
    replayed = otelkv("replay", str(EXAMPLE), "--to", serving_stdout.grpc, "--batch", "5")
    assert replayed.returncode == 0, replayed.stderr
    total = len(json.loads(EXAMPLE.read_text())["items"])
    assert f"sent {total} events" in replayed.stdout and "rejected 0" in replayed.stdout
    code, stdout, logs = serving_stdout.terminate()
    assert code == 0
    lines = [json.loads(line) for line in stdout.splitlines()]
    summaries = [ln for ln in lines if ln["attributes"].get("event.name") == "kubevirt.migration.summary"]
    lines = [ln for ln in lines if ln not in summaries]
    assert len(lines) == total
    assert sorted(ln["body"] for ln in summaries)[:1] == ["fedora-vm migrated node01 → node02 in 31 s"]
    migrated = [ln for ln in lines if ln["attributes"].get("kubevirt.migration.phase") == "Succeeded"]
    assert {ln["attributes"]["kubevirt.vm.name"] for ln in migrated} == {"fedora-vm", "web-01"}
    assert all(ln["resource"]["service.name"] == "kubevirt-events" for ln in migrated)
    assert [log["msg"] for log in logs][-2:] == ["otelkv draining", "otelkv stopped"]
    assert all(log["level"] in ("info", "debug") for log in logs)


def test_serve_forwards_to_loki_with_flags() -> None:
    sink = LokiSink().start()
    serving = Serving("--forward", sink.url, "--tenant", "kubevirt")
    try:
        assert otelkv("replay", str(EXAMPLE), "--to", serving.grpc).returncode == 0
        code, _, _ = serving.terminate()
    finally:
        sink.stop()
    assert code == 0
    assert len(sink.select(service_name="kubevirt-events", k8s_namespace_name="virtualmachines")) > 0


def test_serve_with_a_bad_config_exits_non_zero_naming_the_key() -> None:
    done = otelkv("serve", "--forward", "ftp://nowhere")
    assert done.returncode == 2
    assert "--forward (forward.endpoint): must be" in done.stderr  # the flag that set it, and its key


def test_serve_with_an_unusable_store_exits_non_zero_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "otelkv.yaml"
    config.write_text(f"delivery: {{mode: queue, store_path: '{tmp_path / 'missing-dir' / 'q.db'}'}}\n")
    done = otelkv("serve", "--config", str(config))
    assert done.returncode == 2
    assert "delivery.store_path: cannot open" in done.stderr


def test_check_config_prints_the_effective_config() -> None:
    done = otelkv("check-config", "examples/otelkv-loki.yaml")
    assert done.returncode == 0, done.stderr
    effective = yaml.safe_load(done.stdout)
    assert effective["forward"]["tenant"] == "kubevirt"
    assert effective["enrich"]["kinds"] == ["VirtualMachineInstance", "VirtualMachineInstanceMigration"]


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("forward:\n  endpont: stdout\n")
    done = otelkv("check-config", str(bad))
    assert done.returncode == 2 and "forward.endpont: unknown key" in done.stderr


def test_migrations_table_from_a_file_and_from_stdin() -> None:
    done = otelkv("migrations", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert rows[0].split()[:2] == ["VM", "MIGRATION"]
    body = "\n".join(rows[2:])
    assert "virtualmachines/fedora-vm" in body and "node01 → node02" in body and "Succeeded" in body
    assert "tenant-a/web-02" in body and "Failed" in body and "2m36s" in body
    assert "Live migration is not completed after 150 seconds" in body
    piped = otelkv("migrations", "-", "--output", "jsonl", stdin=EXAMPLE.read_text())
    found = [json.loads(line) for line in piped.stdout.splitlines()]
    assert {(m["vm"], m["phase"]) for m in found} == {
        ("fedora-vm", "Succeeded"),
        ("web-01", "Succeeded"),
        ("web-02", "Failed"),
        ("rhel9-db.prod", "Failed"),
    }


def test_migrations_reads_json_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    items = json.loads(EXAMPLE.read_text())["items"]
    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(json.dumps(item) + "\n" for item in reversed(items)))  # any order
    assert main(["migrations", str(lines), "--output", "jsonl"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(found) == 4 and all(m["duration_seconds"] for m in found)


def test_migrations_refuses_what_is_not_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"items": [1, 2]}')
    assert main(["migrations", str(bad)]) == 2
    assert "expected Kubernetes Events" in capsys.readouterr().err
    bad.write_text("{not json")
    assert main(["migrations", str(bad)]) == 2
    assert main(["migrations", str(tmp_path / "missing.json")]) == 2


def test_replay_to_nothing_says_connection_refused_naming_the_address() -> None:
    done = otelkv("replay", str(EXAMPLE), "--to", "127.0.0.1:1")  # the default 10 s timeout: not waited for
    assert done.returncode == 2
    assert (
        done.stderr
        == "otelkv: cannot reach otelkv serve at 127.0.0.1:1: connection refused (is it listening there? see "
        "--grpc-listen)\n"
    )


def test_make_demo_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, "examples/demo.py"],
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "otelkv serve exited 0 after SIGTERM" in done.stdout
    assert "virtualmachines/rhel9-db.prod" in done.stdout and "Failed" in done.stdout
