"""The collector chart's values merged as Helm merges them: exactly our components and ports, a
queue and a store that survive restarts, the pipeline watched, images pinned (issue 19 items 5,
6, 8, 9). Chart facts are read from the vendored chart (tests/data/charts, SOURCE.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from otelkv import config
from tests.conftest import ROOT
from tests.deploy_charts import (
    COLLECTOR_CHART,
    LOKI_CHART,
    collector_config,
    collector_pod,
    collector_ports,
    collector_service_ports,
    collector_values,
    collector_workload,
    helm_merge,
    load,
    loki_gateway_pod,
    loki_single_binary_pod,
    loki_values,
    pod_claims,
    template_says,
)
from tests.test_deploy import DEPLOY, render

VALUES = ROOT / "collector-config" / "values-sidecar.yaml"
STANDALONE = ROOT / "collector-config" / "collector-standalone.yaml"


def sidecar_values() -> dict[str, Any]:
    loaded: dict[str, Any] = load(VALUES)
    return loaded


def loki_app_values() -> dict[str, Any]:
    values: dict[str, Any] = load(DEPLOY / "apps/loki/application.yaml")["spec"]["source"]["helm"]["valuesObject"]
    return values


def test_helm_merge_merges_maps_replaces_lists_and_deletes_nulls() -> None:
    defaults = {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": {"d": 1}}
    merged = helm_merge(defaults, {"a": {"y": [3]}, "b": None, "c": {"e": {"f": None, "g": 1}}})
    assert merged == {"a": {"x": 1, "y": [3]}, "c": {"d": 1, "e": {"g": 1}}}
    assert defaults["b"] == 2  # the defaults are left alone


def test_the_chart_defaults_are_what_the_nulls_remove() -> None:
    """Chart 0.170.0 values.yaml: otlp, jaeger, zipkin and prometheus receivers, debug exporter,
    metrics and traces pipelines, and the otlp/jaeger/zipkin ports, all on by default; a merge
    without our nulls would keep every one of them."""
    defaults = load(COLLECTOR_CHART / "values.yaml")
    assert set(defaults["config"]["receivers"]) == {"otlp", "jaeger", "zipkin", "prometheus"}
    assert set(defaults["config"]["service"]["pipelines"]) == {"logs", "metrics", "traces"}
    assert {n for n, p in defaults["ports"].items() if p["enabled"]} == {
        "otlp",
        "otlp-http",
        "jaeger-compact",
        "jaeger-thrift",
        "jaeger-grpc",
        "zipkin",
    }
    without_nulls = {k: v for k, v in sidecar_values().items() if k not in ("config", "ports", "service")}
    assert "jaeger" in collector_config(without_nulls)["receivers"]  # the finding of issue 19 item 5
    # templates/_config.tpl: the events preset merges its receiver in and appends it, with uniq.
    assert template_says(
        COLLECTOR_CHART,
        "templates/_config.tpl",
        '{{- $_ := set $config.service.pipelines.logs "receivers" (append '
        "$config.service.pipelines.logs.receivers $receiverName | uniq)  }}",
    )
    # templates/_helpers.tpl serviceEnabled: service.enabled false means no Service in deployment mode.
    assert template_says(COLLECTOR_CHART, "templates/_helpers.tpl", "{{- $serviceEnabled = .Values.service.enabled -}}")


def test_the_merged_collector_runs_exactly_our_components_and_ports() -> None:
    cfg = collector_config(sidecar_values())
    assert set(cfg["receivers"]) == {"k8s_events", "k8sobjects", "otlp/otelkv"}
    assert set(cfg["processors"]) == {"memory_limiter", "filter/kubevirt", "resource/cluster", "batch"}
    assert set(cfg["exporters"]) == {"otlp_grpc/otelkv", "prometheus/otelkv"}
    assert set(cfg["extensions"]) == {"health_check", "file_storage", "k8s_leader_elector"}
    service = cfg["service"]
    assert service["extensions"] == ["health_check", "file_storage", "k8s_leader_elector"]
    assert service["pipelines"] == {
        "logs": {
            "receivers": ["k8s_events"],
            "processors": ["memory_limiter", "filter/kubevirt", "resource/cluster", "batch"],
            "exporters": ["otlp_grpc/otelkv"],
        },
        "logs/vmim": {
            "receivers": ["k8sobjects"],
            "processors": ["memory_limiter", "resource/cluster", "batch"],
            "exporters": ["otlp_grpc/otelkv"],
        },
        # otelkv's own metrics, pushed over OTLP from the sidecar, served for Prometheus
        "metrics/otelkv": {
            "receivers": ["otlp/otelkv"],
            "processors": ["memory_limiter"],
            "exporters": ["prometheus/otelkv"],
        },
    }
    # the OTLP receiver on loopback only (the sidecar alone pushes), the exporter on the pod's address
    assert cfg["receivers"]["otlp/otelkv"] == {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}}}
    assert cfg["exporters"]["prometheus/otelkv"] == {"endpoint": "${env:MY_POD_IP}:8889"}
    # the collector's own listeners: health_check (13133, for the kubelet) and its metrics (8888)
    assert cfg["extensions"]["health_check"]["endpoint"] == "${env:MY_POD_IP}:13133"
    assert service["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"] == 8888
    assert {n: p["containerPort"] for n, p in collector_ports(sidecar_values()).items()} == {
        "metrics": 8888,
        "otelkv-metrics": 8889,
    }
    assert collector_service_ports(sidecar_values()) == {}  # no Service at all
    assert collector_service_ports({}) != {}  # the chart's default: a ClusterIP Service with every port
    values = collector_values(sidecar_values())
    assert [k for k, p in values["presets"].items() if p.get("enabled")] == ["kubernetesEvents"]


def test_the_collector_queue_is_on_a_volume_that_outlives_the_pod() -> None:
    values = sidecar_values()
    cfg = collector_config(values)
    for exporter_config in (cfg, load(STANDALONE)):
        exporter = exporter_config["exporters"]["otlp_grpc/otelkv"]
        assert exporter["sending_queue"]["storage"] == "file_storage"
        assert "file_storage" in exporter_config["service"]["extensions"]
    pod = collector_pod(values)
    directory = cfg["extensions"]["file_storage"]["directory"]
    collector = pod["containers"][0]
    claim = claim_mounted_at(pod, collector, directory)
    assert claim == "collector-queue-otel-collector-0"  # pod 0's own claim (volumeClaimTemplates)
    assert_kept_by_the_statefulset(values, claim)
    assert pod["securityContext"]["fsGroup"] == 10001  # the volume is writable by the collector's UID


def claim_mounted_at(pod: dict[str, Any], container: dict[str, Any], path: str) -> str:
    volumes = {v["name"]: v for v in pod["volumes"]}
    [mount] = [m for m in container["volumeMounts"] if Path(path).is_relative_to(m["mountPath"])]
    claim: str = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    return claim


def assert_kept_by_the_statefulset(values: dict[str, Any], claim: str) -> None:
    """A claim of a volumeClaimTemplate, one per pod and different for each: the StatefulSet
    controller keeps it when the pod or the StatefulSet goes (no retention policy rendered:
    Kubernetes' default is Retain for both whenDeleted and whenScaled), and Argo CD never sees it
    (it is not in the rendered manifests), so neither prunes it."""
    workload = collector_workload(values)
    assert workload["kind"] == "StatefulSet"
    assert "persistentVolumeClaimRetentionPolicy" not in workload["spec"]
    assert claim in pod_claims(values, 0) and claim not in pod_claims(values, 1)
    for template in workload["spec"]["volumeClaimTemplates"]:
        assert template["spec"]["accessModes"] == ["ReadWriteOnce"]  # one pod each: RWO is enough


def assert_kept_claim(objects: list[dict[str, Any]], name: str) -> None:
    [pvc] = [o for o in objects if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == name]
    options = pvc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].split(",")
    assert {"Prune=false", "Delete=false"} <= set(options)


def otelkv_store(data: str) -> str:
    store: str = yaml.safe_load(data)["delivery"]["store_path"]
    return store


def test_otelkv_keeps_its_store_on_a_volume_in_both_forms() -> None:
    """delivery.store_path: dead letters, and beside it <file>.migrations.json, the tracker's
    migrations in flight (docs/configuration.md); without it both are lost at every restart."""
    values = sidecar_values()
    pod = collector_pod(values)
    sidecar = next(c for c in pod["containers"] if c["name"] == "otelkv")
    [cm] = [o for o in values["extraManifests"] if o["kind"] == "ConfigMap"]
    store = otelkv_store(cm["data"]["otelkv.yaml"])
    assert_kept_by_the_statefulset(values, claim_mounted_at(pod, sidecar, store))
    rendered = render(DEPLOY / "apps/otelkv")
    deployment = next(o for o in rendered if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    [cm] = [o for o in rendered if o["kind"] == "ConfigMap"]
    store = otelkv_store(cm["data"]["otelkv.yaml"])
    assert_kept_claim(rendered, claim_mounted_at(deployment, deployment["containers"][0], store))
    assert deployment["securityContext"]["fsGroup"] == 10001
    docs = (ROOT / "docs/deployment.md").read_text()
    assert "## What survives a restart" in docs
    for what in ("collector restart", "otelkv restart", "node loss", "Loki restart"):
        assert what in docs, what


# -- Loki: the small default and the HA option -------------------------------------------------


def test_the_highly_available_loki_values_pass_the_charts_own_checks() -> None:
    """Chart 6.29.0 templates/validate.yaml: scalable targets need object storage; single binary
    and scalable replicas together only in the transition mode; a schema is required."""
    assert template_says(
        LOKI_CHART,
        "templates/validate.yaml",
        '{{- fail "Cannot run scalable targets (backend, read, write) or distributed targets '
        'without an object storage backend."}}',
    )
    ha = load(DEPLOY / "apps/loki/values-ha.yaml")
    v = loki_values(helm_merge(loki_app_values(), ha))
    assert v["deploymentMode"] == "SimpleScalable"
    assert v["singleBinary"]["replicas"] == 0
    assert min(v[t]["replicas"] for t in ("read", "write", "backend")) >= 2
    storage = v["loki"]["storage"]["type"]
    assert storage != "filesystem" and set(v["loki"]["storage"]["bucketNames"]) >= {"chunks", "ruler"}
    assert v["loki"]["commonConfig"]["replication_factor"] == 3 <= v["write"]["replicas"]
    [schema] = v["loki"]["schemaConfig"]["configs"]
    assert (schema["store"], schema["schema"], schema["object_store"]) == ("tsdb", "v13", storage)
    assert v["loki"]["compactor"]["delete_request_store"] == storage
    assert v["loki"]["auth_enabled"] is True and v["gateway"]["basicAuth"]["enabled"] is True  # kept from the app
    docs = (ROOT / "docs/deployment.md").read_text()
    assert "## A highly available Loki" in docs and "apps/loki/values-ha.yaml" in docs


# -- images (item 8) ---------------------------------------------------------------------------

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def images() -> dict[str, str]:
    loki = loki_app_values()
    standalone = next(o for o in render(DEPLOY / "apps/otelkv") if o["kind"] == "Deployment")
    pods = {
        "collector": collector_pod(sidecar_values()),
        "loki": loki_single_binary_pod(loki),
        "gateway": loki_gateway_pod(loki),
        "standalone": standalone["spec"]["template"]["spec"],
    }
    return {f"{pod}/{c['name']}": c["image"] for pod, spec in pods.items() for c in spec["containers"]}


def test_every_image_is_pinned_and_listed_with_its_digest_status() -> None:
    """Every image is pinned in our values (never the chart's moving default) and listed in
    docs/deployment.md's Images table: with its digest, or marked *digest missing* — no registry
    is reachable from here, so a digest that could not be read from a verifiable source is not
    written down (the table says how to fill and bump it)."""
    found = images()
    assert set(found) == {
        "collector/opentelemetry-collector",
        "collector/otelkv",
        "loki/loki-sc-rules",
        "loki/loki",
        "gateway/nginx",
        "standalone/otelkv",
    }
    values, loki = sidecar_values(), loki_app_values()
    assert values["image"]["tag"] == load(COLLECTOR_CHART / "Chart.yaml")["appVersion"]  # explicit, not implied
    assert loki["loki"]["image"]["tag"] and loki["gateway"]["image"]["tag"] and loki["sidecar"]["image"]["tag"]
    docs = (ROOT / "docs/deployment.md").read_text()
    table = dict(re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", docs.split("## Images", 1)[1], re.M))
    for image in set(found.values()):
        assert ":" in image.rsplit("/", 1)[-1] or DIGEST.search(image), image
        name = image.split("@")[0]
        name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
        assert name in table, image
        assert DIGEST.search(image) or table[name].strip() == "*digest missing*", image
    assert "### Bumping an image" in docs


# -- the pipeline watched (item 9) -------------------------------------------------------------


def test_the_collector_and_otelkv_are_scraped_and_alerted_on() -> None:
    optional = render(DEPLOY / "optional")
    [monitor] = [o for o in optional if o["kind"] == "PodMonitor"]
    ports = {p["name"] for c in collector_pod(sidecar_values())["containers"] for p in c.get("ports", [])}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} == {"metrics", "otelkv-metrics"} <= ports
    [rule] = [o for o in optional if o["kind"] == "PrometheusRule"]
    assert rule["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "OtelCollectorQueueFilling",
        "OtelCollectorSendFailures",
        "OtelkvForwardFailures",
        "OtelkvRecordsRefused",
        "KubeVirtEventsSilent",
    }
    exporter = next(iter(collector_config(sidecar_values())["exporters"]))
    assert f'exporter="{exporter}"' in alerts["OtelCollectorQueueFilling"]
    assert "otelcol_exporter_queue_capacity" in alerts["OtelCollectorQueueFilling"]
    assert "otelcol_exporter_send_failed_log_records_total" in alerts["OtelCollectorSendFailures"]
    assert "kubevirt_vmi_migrations_in_running_phase" in alerts["KubeVirtEventsSilent"]
    # otelkv's metric names: the SDK's instrument names, dots to underscores, counters + _total
    telemetry = (ROOT / "otelkv/telemetry/metrics.py").read_text()
    for expr in alerts.values():
        for name in re.findall(r"\b(otelkv_[a-z_]+)_total\b", expr):
            assert f'"{name.replace("_", ".")}"' in telemetry, name
        assert expr.count("(") == expr.count(")"), expr
    assert config.Config().enrich.service_name  # the silent-pipeline alert counts what otelkv enriched
