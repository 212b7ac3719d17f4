"""The image and the collector configuration agree with otelkv's defaults and with FACTS."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelkv import config
from otelkv.server import Service
from tests.conftest import ROOT, make_config

DEFAULTS = config.Config()
GRPC_PORT = config.split_host_port(DEFAULTS.grpc_listen)[1]
HTTP_PORT = config.split_host_port(DEFAULTS.http_listen)[1]
# FACTS §2: keep only KubeVirt objects (a record that matches is dropped).
KEEP_KUBEVIRT = 'not IsMatch(resource.attributes["k8s.object.kind"], "^VirtualMachineInstance(Migration)?$")'
# A KubeVirt event record is far below this: 865 bytes on the wire in the example stream (docs/performance.md).
MAX_RECORD_BYTES = 4 * 1024


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_image_is_slim_non_root_and_exposes_the_default_ports() -> None:
    stage = final_stage()
    ops = dict(stage)
    assert ops["FROM"].startswith("python:3.11-slim")
    user = ops["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert sorted(int(p) for p in ops["EXPOSE"].split()) == sorted([GRPC_PORT, HTTP_PORT])
    assert yaml.safe_load(ops["ENTRYPOINT"]) == ["otelkv"] and yaml.safe_load(ops["CMD"]) == ["serve"]
    assert not any(op == "RUN" and re.search(r"apt-get|gcc|build-essential", args) for op, args in stage)
    assert any(op == "COPY" and "--from=build" in args for op, args in stage)


def test_image_healthcheck_probes_healthz_on_the_http_port(tmp_path: Path) -> None:
    command = yaml.safe_load(dict(final_stage())["HEALTHCHECK"].split("CMD", 1)[1].strip())
    assert command[:2] == ["python", "-c"] and f"127.0.0.1:{HTTP_PORT}/healthz" in command[2]
    svc = Service(make_config("stdout"))
    svc.start()
    try:  # the very command, against a running otelkv (on the port it got)
        probe = command[2].replace(f":{HTTP_PORT}/", f":{svc.http_port}/")
        assert subprocess.run([sys.executable, "-c", probe], check=False, timeout=10).returncode == 0
    finally:
        svc.stop(1)
    assert subprocess.run([sys.executable, "-c", command[2].replace(f":{HTTP_PORT}/", ":1/")], check=False,
                          capture_output=True, timeout=10).returncode != 0  # fmt: skip


def test_image_installs_what_the_package_needs() -> None:
    copied = [args for op, args in dockerfile() if op == "COPY"]
    assert any("pyproject.toml" in c and "README.md" in c for c in copied)
    assert any(c.startswith("otelkv") for c in copied)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "README.md" not in ignored and "otelkv" not in ignored


def collector_configs() -> dict[str, dict[str, Any]]:
    values = yaml.safe_load((ROOT / "collector-config" / "values-sidecar.yaml").read_text())
    standalone = yaml.safe_load((ROOT / "collector-config" / "collector-standalone.yaml").read_text())
    return {"sidecar": values["config"], "standalone": standalone}


@pytest.mark.parametrize("form", ["sidecar", "standalone"])
def test_collector_pipeline_agrees_with_otelkv_and_facts(form: str) -> None:
    cfg = collector_configs()[form]
    pipeline = cfg["service"]["pipelines"]["logs"]
    assert pipeline["receivers"] == ["k8s_events"]
    assert pipeline["processors"][-2:] == ["filter/kubevirt", "batch"]
    [exporter_name] = pipeline["exporters"]
    assert exporter_name.split("/")[0] == "otlp_grpc"
    flt = cfg["processors"]["filter/kubevirt"]
    assert flt["error_mode"] == "ignore" and flt["logs"]["log_record"] == [KEEP_KUBEVIRT]
    batch = cfg["processors"]["batch"]
    assert batch["send_batch_max_size"] * MAX_RECORD_BYTES <= DEFAULTS.max_message_bytes
    assert batch["send_batch_size"] <= batch["send_batch_max_size"]
    exporter = cfg["exporters"][exporter_name]
    assert int(exporter["endpoint"].rsplit(":", 1)[1]) == GRPC_PORT
    assert exporter["tls"]["insecure"] is True
    assert float(exporter["timeout"].rstrip("s")) > DEFAULTS.forward.timeout
    assert exporter["retry_on_failure"]["enabled"] and exporter["sending_queue"]["enabled"]


def test_the_filter_keeps_exactly_the_kubevirt_kinds() -> None:
    pattern = re.search(r'"(\^.*\$)"', KEEP_KUBEVIRT)
    assert pattern is not None
    kinds = [
        "VirtualMachineInstance",
        "VirtualMachineInstanceMigration",
        "VirtualMachine",
        "Pod",
        "Node",
        "VirtualMachineInstanceMigrationX",
        "XVirtualMachineInstance",
        "VirtualMachineInstanceReplicaSet",
    ]
    kept = [k for k in kinds if re.search(pattern.group(1), k)]  # RE2 and re agree on this pattern
    assert kept == sorted(DEFAULTS.enrich.kinds)


def test_sidecar_values_run_otelkv_with_the_chart() -> None:
    values = yaml.safe_load((ROOT / "collector-config" / "values-sidecar.yaml").read_text())
    assert values["mode"] and values["image"]["repository"]  # the chart requires both
    assert values["replicaCount"] == 1
    deployment = values["fullnameOverride"]  # what docs/deployment.md and troubleshooting.md name
    for doc in ("deployment.md", "troubleshooting.md"):
        assert f"deploy/{deployment}" in (ROOT / "docs" / doc).read_text()
    assert values["presets"]["kubernetesEvents"]["enabled"] is True
    [sidecar] = values["extraContainers"]
    args = dict(a.removeprefix("--").split("=", 1) for a in sidecar["args"] if a.startswith("--"))
    assert sidecar["args"][0] == "serve"
    cfg = config.load(
        environ={},
        overrides={
            "grpc_listen": args["grpc-listen"],
            "http_listen": args["http-listen"],
            "forward.endpoint": args["forward"],
            "forward.tenant": args["tenant"],
        },
    )
    assert config.split_host_port(cfg.grpc_listen)[1] == GRPC_PORT  # where the collector sends
    http_port = config.split_host_port(cfg.http_listen)[1]
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": http_port}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": http_port}
    assert cfg.forward.endpoint == "http://loki-gateway.loki.svc.cluster.local/otlp"  # FACTS §4: gateway, /otlp
    sc = sidecar["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"]
    assert shlex.split(" ".join(sidecar["args"]))  # plain arguments, no shell
