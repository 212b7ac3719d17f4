"""The image and the collector configuration agree with otelkv's defaults and with FACTS."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
    """(instruction, arguments) of the Dockerfile, continuation lines joined, and the global
    ``ARG name=default`` values substituted into ``FROM`` as the builder does."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    steps = [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]
    first_from = next(i for i, (op, _) in enumerate(steps) if op == "FROM")
    args = dict(a.split("=", 1) for op, a in steps[:first_from] if op == "ARG")
    for name, value in args.items():
        steps = [(op, a.replace(f"${{{name}}}", value) if op == "FROM" else a) for op, a in steps]
    return steps[first_from:]


def stages() -> list[list[tuple[str, str]]]:
    steps = dockerfile()
    starts = [i for i, (op, _) in enumerate(steps) if op == "FROM"] + [len(steps)]
    return [steps[a:b] for a, b in itertools.pairwise(starts)]


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_image_is_slim_non_root_and_exposes_the_default_ports() -> None:
    stage = final_stage()
    ops = dict(stage)
    assert ops["FROM"].startswith("python:3.11-slim@sha256:")
    user = ops["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert sorted(int(p) for p in ops["EXPOSE"].split()) == sorted([GRPC_PORT, HTTP_PORT])
    assert yaml.safe_load(ops["ENTRYPOINT"]) == ["otelkv"]
    # otelkv's own default is loopback: the image's command must listen on every address, on the
    # exposed ports, or `docker run -p` reaches nothing
    assert yaml.safe_load(ops["CMD"]) == [
        "serve",
        f"--grpc-listen=0.0.0.0:{GRPC_PORT}",
        f"--http-listen=0.0.0.0:{HTTP_PORT}",
    ]
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
    assert (
        subprocess.run(
            [sys.executable, "-c", command[2].replace(f":{HTTP_PORT}/", ":1/")],
            check=False,
            capture_output=True,
            timeout=10,
        ).returncode
        != 0
    )


def test_image_installs_what_the_package_needs() -> None:
    copied = [args for op, args in dockerfile() if op == "COPY"]
    assert any("pyproject.toml" in c and "setup.py" in c and "README.md" in c for c in copied)
    assert any(c.startswith("otelkv") for c in copied)
    assert any(c.startswith("requirements.lock") for c in copied)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"README.md", "setup.py", "otelkv", "requirements.lock"} & set(ignored)
    assert "**/*.so" in ignored  # a core built on this machine (make test builds one in place) stays out


def test_the_build_stage_alone_compiles_the_core_and_checks_it_is_there() -> None:
    """issue 13: gcc and the C library's headers in the build stage, the package built with them, the
    build stopped if the core is missing (pip would have installed the pure-Python path); no other
    stage has a compiler."""
    build, *others = stages()
    runs = [a for op, a in build if op == "RUN"]
    apt = next(i for i, r in enumerate(runs) if "apt-get install" in r)
    assert re.search(r"apt-get install --yes --no-install-recommends gcc libc6-dev\b", runs[apt])
    assert "rm -rf /var/lib/apt/lists/*" in runs[apt]
    [package] = [i for i, r in enumerate(runs) if "pip install" in r and "requirements.lock" not in r]
    assert apt < package
    assert "assert native.core(), native.description()" in runs[package]
    assert runs[package].index("pip install") < runs[package].index("native.core()") < runs[package].index("uninstall")
    for stage in others:
        assert not any(re.search(r"\bgcc\b|libc6-dev|apt-get", a) for op, a in stage if op == "RUN")


# -- the image's supply chain and run-time properties (issue 9 items 9-10) -------------------------

DIGEST = re.compile(r"^python:3\.11-slim@sha256:[0-9a-f]{64}( AS \w+)?$")


def test_every_stage_starts_from_the_same_base_pinned_by_digest() -> None:
    bases = [stage[0][1] for stage in stages()]
    assert len(bases) >= 2  # multi-stage
    assert all(DIGEST.match(b) for b in bases), bases
    assert len({b.split()[0] for b in bases}) == 1
    assert "docker buildx imagetools inspect python:3.11-slim" in (ROOT / "Dockerfile").read_text()  # how to refresh


def test_the_final_stage_builds_nothing_and_installs_nothing() -> None:
    *_, final = stages()
    runs = " ".join(a for op, a in final if op == "RUN")
    assert not re.search(r"apt-get|apk |gcc|g\+\+|make |build-essential|pip install|python -m venv", runs)
    assert "pip uninstall" in runs  # the base image's pip goes too
    copies = [a for op, a in final if op == "COPY"]
    assert copies == ["--from=build /opt/otelkv /opt/otelkv"]  # only the built virtualenv


def test_the_image_runs_as_10001_on_a_read_only_root_filesystem() -> None:
    *_, final = stages()
    ops = dict(final)
    assert ops["USER"] == "10001:10001"
    runs = " ".join(a for op, a in final if op == "RUN")
    assert "--uid 10001" in runs and "chown 10001:10001 /var/lib/otelkv" in runs
    volumes = yaml.safe_load(ops["VOLUME"])
    assert set(volumes) == {"/var/lib/otelkv", "/tmp"}  # the queue store and temporary files
    env = dict(re.findall(r"(\w+)=(\S+)", ops["ENV"]))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["TMPDIR"] == "/tmp"
    assert ops["WORKDIR"] == "/var/lib/otelkv"
    values = yaml.safe_load((ROOT / "collector-config" / "values-sidecar.yaml").read_text())
    standalone = yaml.safe_load((ROOT / "deploy" / "apps" / "otelkv" / "deployment.yaml").read_text())["spec"]
    sidecar_pod = {"volumes": values["extraVolumes"], "containers": values["extraContainers"]}
    pod_specs = [sidecar_pod, standalone["template"]["spec"]]
    for pod in pod_specs:  # Kubernetes ignores VOLUME: each form mounts a writable /tmp itself
        volumes = {v["name"]: v for v in pod["volumes"]}
        [tmp] = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert "emptyDir" in volumes[tmp["name"]]


def test_the_build_installs_the_lock_with_hashes_and_wheels_only() -> None:
    build, *_ = stages()
    runs = [a for op, a in build if op == "RUN"]
    [locked] = [r for r in runs if "requirements.lock" in r]
    assert "--require-hashes" in locked and "--only-binary=:all:" in locked
    [package] = [r for r in runs if "pip install" in r and "requirements.lock" not in r]
    assert "--no-deps" in package  # nothing unpinned comes in with otelkv itself


def lock_pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of requirements.lock (pip-compile --generate-hashes output)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "requirements.lock").read_text())
    pins: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", " ")):
            spec, *hashes = line.split(" --hash=")
            name, version = spec.strip().split("==")
            pins[canonicalize_name(name)] = (version, [h.strip() for h in hashes])
    return pins


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = lock_pins()
    assert pins and all(hashes and all(h.startswith("sha256:") for h in hashes) for _, hashes in pins.values())
    for dependency in pyproject["project"]["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name][0]), f"{name}=={pins[name][0]} does not satisfy {requirement}"
    assert "with Python 3.11" in (ROOT / "requirements.lock").read_text()  # the image's Python


def test_make_audit_checks_the_lock_and_is_not_part_of_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    audit = re.search(r"^audit:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert audit is not None
    assert "pip-audit" in audit.group(1) and "-r requirements.lock" in audit.group(1)
    test_target = re.search(r"^test:(.*)$", makefile, re.M)
    assert test_target is not None and "audit" not in test_target.group(1)


def collector_configs() -> dict[str, dict[str, Any]]:
    values = yaml.safe_load((ROOT / "collector-config" / "values-sidecar.yaml").read_text())
    standalone = yaml.safe_load((ROOT / "collector-config" / "collector-standalone.yaml").read_text())
    return {"sidecar": values["config"], "standalone": standalone}


@pytest.mark.parametrize("form", ["sidecar", "standalone"])
def test_collector_pipeline_agrees_with_otelkv_and_facts(form: str) -> None:
    cfg = collector_configs()[form]
    pipeline = cfg["service"]["pipelines"]["logs"]
    assert pipeline["receivers"] == ["k8s_events"]
    # resource/cluster (the cluster's name, docs/deployment.md) may sit between the filter and batch
    assert [p for p in pipeline["processors"] if p != "resource/cluster"][-2:] == ["filter/kubevirt", "batch"]
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
    assert values["replicaCount"] == 2  # one leader, one standby (tests/test_leader_election.py)
    workload = values["fullnameOverride"]  # what docs/deployment.md and troubleshooting.md name
    kind = {"deployment": "deploy", "statefulset": "sts"}[values["mode"]]
    for doc in ("deployment.md", "troubleshooting.md"):
        assert f"{kind}/{workload}" in (ROOT / "docs" / doc).read_text()
    assert values["presets"]["kubernetesEvents"]["enabled"] is True
    [sidecar] = values["extraContainers"]
    args = dict(a.removeprefix("--").split("=", 1) for a in sidecar["args"] if a.startswith("--"))
    assert sidecar["args"][0] == "serve"
    cfg = config.load(
        environ={e["name"]: e["value"] for e in sidecar["env"]},
        overrides={
            "grpc_listen": args["grpc-listen"],
            "http_listen": args["http-listen"],
            "forward.endpoint": args["forward"],
            "forward.tenant": args["tenant"],
        },
    )
    assert config.split_host_port(cfg.grpc_listen) == ("127.0.0.1", GRPC_PORT)  # where the collector sends
    # OTLP/gRPC on loopback (the collector is in the pod), no HTTP listener; the kubelet asks the
    # gRPC health listener, on a port the chart's own (4317/4318, 8888, 8889, 13133) do not take.
    assert cfg.http_listen == ""
    assert cfg.admin_grpc_listen and cfg.admin_listen is None
    admin_host, admin_port = config.split_host_port(cfg.admin_grpc_listen)
    assert admin_host == "0.0.0.0" and admin_port not in {GRPC_PORT, HTTP_PORT, 4317, 4318, 8888, 8889, 13133}
    assert sidecar["ports"] == [{"name": "otelkv-health", "containerPort": admin_port, "protocol": "TCP"}]
    # the kubelet's grpc probe, service "" (liveness) for both: never "readiness" (docs/deployment.md)
    assert sidecar["livenessProbe"]["grpc"] == sidecar["readinessProbe"]["grpc"] == {"port": admin_port}
    # otelkv's metrics go to the collector's own OTLP receiver in the pod
    receiver = values["config"]["receivers"]["otlp/otelkv"]["protocols"]["grpc"]["endpoint"]
    assert cfg.metrics_otlp_endpoint == receiver == "127.0.0.1:4317"
    assert cfg.forward.endpoint == "http://loki-gateway.loki.svc.cluster.local/otlp"  # FACTS §4: gateway, /otlp
    sc = sidecar["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"]
    assert shlex.split(" ".join(sidecar["args"]))  # plain arguments, no shell


def test_the_deployed_arguments_are_real_serve_flags() -> None:
    """Every argument the sidecar values and the standalone Deployment pass is one `otelkv serve`
    parses, and the admin listener loads as a configuration value."""
    from otelkv.commands.parser import build_parser  # noqa: PLC0415 - the CLI's own parser, not a copy of its flags

    values = yaml.safe_load((ROOT / "collector-config" / "values-sidecar.yaml").read_text())
    standalone = yaml.safe_load((ROOT / "deploy" / "apps" / "otelkv" / "deployment.yaml").read_text())
    sidecar = values["extraContainers"][0]
    parsed = build_parser().parse_args(sidecar["args"])
    assert parsed.command == "serve" and parsed.http_listen == "" and parsed.admin_listen is None
    environ = {e["name"]: e["value"] for e in sidecar["env"]}
    assert set(environ) <= set(config.ENVIRONMENT)  # variables otelkv reads
    cfg = config.load(environ=environ, overrides={"http_listen": parsed.http_listen})
    assert cfg.admin_grpc_listen == "0.0.0.0:4321" and cfg.metrics_otlp_endpoint == "127.0.0.1:4317"
    parsed = build_parser().parse_args(standalone["spec"]["template"]["spec"]["containers"][0]["args"])
    assert parsed.command == "serve" and parsed.admin_listen == "0.0.0.0:4321"
    cfg = config.load(environ={}, overrides={"admin_listen": parsed.admin_listen})
    assert config.to_dict(cfg)["admin_listen"] == "0.0.0.0:4321"  # (a key of the receive branch)
