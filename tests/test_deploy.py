"""deploy/: manifests that validate and render, LogQL that parses, and names that agree everywhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from otelkv import config
from otelkv.otlp.enrich import ATTRIBUTES
from tests.conftest import ROOT
from tests.deploy_charts import collector_config, collector_pod, collector_ports, collector_workload
from tests.loki_sink import loki_name

DEPLOY = ROOT / "deploy"
BIN = ROOT / ".venv" / "bin"
TENANT = "kubevirt"
K8S_VERSION = "1.33.0"
KUBECTL = str(BIN / "kubectl") if (BIN / "kubectl").exists() else shutil.which("kubectl") or "kubectl"
NODE = str(BIN / "node") if (BIN / "node").exists() else shutil.which("node") or "node"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def yaml_files() -> list[Path]:
    roots = [DEPLOY, ROOT / "collector-config", ROOT / "examples", ROOT / "tests" / "data" / "config"]
    return sorted(p for root in roots for p in root.rglob("*.y*ml"))


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text()))
    assert documents and all(d is not None for d in documents)


def render(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_kustomization_renders(directory: Path) -> None:
    assert render(directory)


def core(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects of Kubernetes' own API groups (CRDs like Application and HTTPRoute have no schema here)."""
    groups = [o["apiVersion"].rpartition("/")[0] for o in objects]
    return [
        o
        for o, g in zip(objects, groups, strict=True)
        if "." not in g or (g.endswith(".k8s.io") and g != "gateway.networking.k8s.io")
    ]


def test_core_manifests_validate_against_the_kubernetes_schemas() -> None:
    objects = core(render(DEPLOY)) + core(render(DEPLOY / "apps" / "otelkv"))
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ConfigMap", "Deployment", "Service", "NetworkPolicy"} <= kinds
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_validator_catches_a_wrong_manifest() -> None:
    deployment = next(o for o in render(DEPLOY / "apps" / "otelkv") if o["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


# -- LogQL -----------------------------------------------------------------------------------------

GRAFANA_VARIABLES = {
    "$cluster": "homelab",
    "$namespace": "virtualmachines",
    "$vm": "fedora-vm",
    "$__auto": "5m",
    "$__range": "1h",
}
# Loki rejects these although Grafana's grammar takes them (FACTS §5): a grouping after a range
# aggregation that has no unwrap.
NOT_LOKI = re.compile(
    r"\b(count_over_time|rate|bytes_over_time|bytes_rate|absent_over_time)\((?:[^()]|\([^()]*\))*\)\s*(by|without)\b"
)


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DEPLOY / "apps/monitoring/dashboards/kubevirt-migrations.json").read_text())
    return loaded


def dashboard_expressions() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    for name, value in GRAFANA_VARIABLES.items():
        exprs = [e.replace(name, value) for e in exprs]
    return exprs


def rule_expressions() -> list[str]:
    rules = load(DEPLOY / "apps/monitoring/rules/kubevirt-migrations.yaml")
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def doc_blocks(kind: str) -> list[str]:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [b.strip() for p in paths for b in re.findall(rf"```{kind}\n(.*?)```", p.read_text(), re.S)]


def parse_logql(expressions: list[str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [NODE, str(ROOT / "tests" / "logql" / "check.mjs")],
        input=json.dumps(expressions),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def test_every_logql_expression_parses_with_grafanas_grammar() -> None:
    expressions = dashboard_expressions() + rule_expressions() + doc_blocks("logql")
    assert len(expressions) >= 15
    results = parse_logql(expressions)
    bad = [r for r in results if not r["ok"]]
    assert not bad, bad
    assert not [e for e in expressions if NOT_LOKI.search(e)]


def test_invalid_queries_in_the_cookbook_are_invalid() -> None:
    invalid = doc_blocks("logql-invalid")
    assert len(invalid) >= 2
    results = parse_logql(invalid)
    for result in results:
        assert not result["ok"] or NOT_LOKI.search(result["expr"]), result["expr"]


def test_the_grammar_check_can_fail() -> None:
    [result] = parse_logql(['{service_name="kubevirt-events"} | kubevirt_vm_name= '])
    assert not result["ok"]


def test_rules_are_metric_queries_with_the_prometheus_rule_format() -> None:
    rules = load(DEPLOY / "apps/monitoring/rules/kubevirt-migrations.yaml")
    names = set()
    for group in rules["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert rule["expr"].lstrip().startswith(("sum", "(", "count", "quantile", "rate", "max"))  # not a log query
            names.add(rule["alert"])
    assert {"KubeVirtMigrationFailed", "KubeVirtMigrationFailureRatioHigh", "KubeVirtMigrationStuck"} <= names
    assert {  # issue 21 §4 (tests/test_alerts.py feeds records through each)
        "KubeVirtVMMigratedTooOften",
        "KubeVirtVMMigrationFailingRepeatedly",
        "KubeVirtMigrationsSlow",
        "KubeVirtMigrationTookTooLong",
        "KubeVirtDrainMigrationFailed",
        "KubeVirtDrainStalled",
        "KubeVirtVMNotMigratable",
    } <= names


# -- names that must agree ---------------------------------------------------------------------


def loki_values() -> dict[str, Any]:
    app = load(DEPLOY / "apps/loki/application.yaml")
    values: dict[str, Any] = app["spec"]["source"]["helm"]["valuesObject"]
    return values


def test_loki_keeps_and_deletes_as_facts_4_require() -> None:
    app = load(DEPLOY / "apps/loki/application.yaml")
    assert app["spec"]["source"]["chart"] == "loki" and app["spec"]["source"]["targetRevision"].startswith("6.")
    v = loki_values()
    assert v["deploymentMode"] == "SingleBinary"
    assert v["read"]["replicas"] == v["write"]["replicas"] == v["backend"]["replicas"] == 0
    assert v["loki"]["commonConfig"]["replication_factor"] == 1
    [schema] = v["loki"]["schemaConfig"]["configs"]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    assert v["loki"]["limits_config"]["retention_period"] == "168h"
    compactor = v["loki"]["compactor"]
    assert compactor["retention_enabled"] is True and compactor["delete_request_store"] == "filesystem"
    persistence = v["singleBinary"]["persistence"]
    assert (persistence["size"], persistence["storageClass"]) == ("50Gi", "longhorn")
    assert persistence["enableStatefulSetAutoDeletePVC"] is False
    assert v["chunksCache"]["enabled"] is False


def test_tenant_is_the_same_everywhere() -> None:
    assert loki_values()["loki"]["auth_enabled"] is True
    sidecar = load(ROOT / "collector-config/values-sidecar.yaml")["extraContainers"][0]["args"]
    standalone = next(o for o in render(DEPLOY / "apps" / "otelkv") if o["kind"] == "Deployment")
    args = standalone["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--tenant={TENANT}" in sidecar and f"--tenant={TENANT}" in args
    datasource = yaml.safe_load(load(DEPLOY / "apps/monitoring/datasource.yaml")["data"]["loki-kubevirt.yaml"])
    [ds] = datasource["datasources"]  # its only definition (tests/test_deploy_gitops.py)
    assert ds["jsonData"]["httpHeaderName1"] == "X-Scope-OrgID" and ds["secureJsonData"]["httpHeaderValue1"] == TENANT
    assert (ds["orgId"], ds["version"], ds["editable"], ds["isDefault"]) == (1, 1, False, False)
    assert ds["jsonData"]["maxLines"] > 0
    rules = loki_values()["sidecar"]["rules"]
    assert rules["folder"] == f"{loki_values()['loki']['rulerConfig']['storage']['local']['directory']}/{TENANT}"
    assert (ROOT / "examples/otelkv-loki.yaml").read_text().count(f"tenant: {TENANT}") == 1


def test_services_namespaces_and_ports_agree() -> None:
    loki_app = load(DEPLOY / "apps/loki/application.yaml")
    gateway = f"http://{loki_app['spec']['source']['helm']['releaseName']}-gateway.{loki_app['spec']['destination']['namespace']}.svc.cluster.local"
    datasource = yaml.safe_load(load(DEPLOY / "apps/monitoring/datasource.yaml")["data"]["loki-kubevirt.yaml"])
    assert datasource["datasources"][0]["url"] == gateway
    for args in (
        load(ROOT / "collector-config/values-sidecar.yaml")["extraContainers"][0]["args"],
        next(o for o in render(DEPLOY / "apps/otelkv") if o["kind"] == "Deployment")["spec"]["template"]["spec"][
            "containers"
        ][0]["args"],
    ):
        assert f"--forward={gateway}/otlp" in args
    service = next(o for o in render(DEPLOY / "apps/otelkv") if o["kind"] == "Service")
    grpc_port = config.split_host_port(config.Config().grpc_listen)[1]
    http_port = config.split_host_port(config.Config().http_listen)[1]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"otlp-grpc": grpc_port, "http": http_port}
    standalone = load(ROOT / "collector-config/collector-standalone.yaml")
    endpoint = standalone["exporters"]["otlp_grpc/otelkv"]["endpoint"]
    assert endpoint == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:{grpc_port}"
    alertmanager = loki_values()["loki"]["rulerConfig"]["alertmanager_url"]
    assert ".monitoring.svc" in alertmanager
    monitoring = render(DEPLOY / "apps/monitoring")
    assert {o["metadata"]["namespace"] for o in monitoring if o["metadata"]["name"] != "kubevirt-migrations-rules"} == {
        "monitoring"
    }
    app = load(DEPLOY / "apps/otel-collector/application.yaml")
    assert app["spec"]["sources"][0]["helm"]["valueFiles"] == ["$otelkv/collector-config/values-sidecar.yaml"]
    assert (ROOT / "collector-config/values-sidecar.yaml").exists()


def test_labels_and_attribute_names_agree_with_otelkv() -> None:
    service_name = config.Config().enrich.service_name
    structured = {loki_name(a) for a in ATTRIBUTES} | {"k8s_object_kind"}
    for expr in dashboard_expressions() + rule_expressions() + doc_blocks("logql"):
        assert f'service_name="{service_name}"' in expr, expr
        for name in re.findall(r"\b(kubevirt_[a-z_]+)\b", expr):
            assert name in structured, name
    panels = dashboard()["panels"]
    assert {p["datasource"]["uid"] for p in panels} == {"loki-kubevirt"}
    table = next(p for p in panels if p["type"] == "table")
    shown = table["transformations"][1]["options"]["includeByName"]
    assert {k for k in shown if k.startswith("kubevirt_")} <= structured
    sidecar_labels = load(DEPLOY / "apps/monitoring/kustomization.yaml")["configMapGenerator"]
    assert sidecar_labels[0]["options"]["labels"] == {"grafana_dashboard": "1"}
    assert sidecar_labels[1]["options"]["labels"] == {loki_values()["sidecar"]["rules"]["label"]: "true"}


def test_the_events_preset_uses_the_k8s_events_receiver_and_the_pipeline_holds_only_it() -> None:
    """Chart 0.170.0 facts (FACTS.md §4b): without ``useK8sEventsReceiver: true`` the preset means
    the ``k8sobjects`` receiver on ``events.k8s.io``, the ClusterRole grants only that group, and
    ``k8s_events`` gets 403 on core events while the collector stays Ready. The preset appends
    its receiver to the logs pipeline (``append … | uniq``), so the pipeline must name exactly the
    receivers otelkv reads."""
    values = load(ROOT / "collector-config/values-sidecar.yaml")
    preset = values["presets"]["kubernetesEvents"]
    assert preset == {"enabled": True, "useK8sEventsReceiver": True}
    chart_appends = "k8s_events" if preset["useK8sEventsReceiver"] else "k8sobjects"
    receivers = values["config"]["service"]["pipelines"]["logs"]["receivers"]
    rendered = list(dict.fromkeys([*receivers, chart_appends]))  # what the chart's template makes
    assert rendered == ["k8s_events"]
    assert "k8s_events" in values["config"]["receivers"]


# -- Loki behind the gateway's basic auth (issue 11 item 2) --------------------------------------

# Loki chart 6.29.0 (production/helm/loki, templates/_helpers.tpl): the gateway's nginx writes
# `auth_basic` only under `gateway.basicAuth.enabled`, reading `.htpasswd` from the Secret
# `gateway.basicAuth.existingSecret`; it passes X-Scope-OrgID through untouched and routes
# /otlp/v1/logs, /loki/api/v1/push and /loki/api/v1/delete like any query. So without basic auth
# anyone who reaches the gateway pushes, reads and deletes any tenant.
LOKI_SECRET = "loki-gateway-auth"
READ_PATHS = [
    "/loki/api/v1/query",
    "/loki/api/v1/query_range",
    "/loki/api/v1/labels",
    "/loki/api/v1/label/service_name/values",
    "/loki/api/v1/series",
    "/loki/api/v1/index/stats",
    "/loki/api/v1/index/volume",
    "/loki/api/v1/detected_fields",
]
NOT_ROUTED = [
    "/otlp/v1/logs",
    "/loki/api/v1/push",
    "/api/prom/push",
    "/loki/api/v1/delete",
    "/loki/api/v1/rules",
    "/loki/api/v1/rules/kubevirt",
    "/api/prom/rules",
    "/loki/api/v1/tail",
    "/flush",
    "/config",
    "/compactor/ring",
    "/loki/api/v1/labelsx",
    "/loki/api/v1/querying",
]


def route_takes(rules: list[dict[str, Any]], path: str) -> bool:
    """Gateway API path matching: Exact is equality, PathPrefix matches whole path elements."""
    for rule in rules:
        for match in rule.get("matches", [{"path": {"type": "PathPrefix", "value": "/"}}]):
            kind, value = match["path"]["type"], match["path"]["value"]
            prefix = value.rstrip("/")
            if (kind == "Exact" and path == value) or (
                kind == "PathPrefix" and (path == value or path.startswith(prefix + "/") or not prefix)
            ):
                return True
    return False


def test_the_route_exposes_read_paths_only() -> None:
    route = load(DEPLOY / "optional/httproute.yaml")
    rules = route["spec"]["rules"]
    assert [r for r in READ_PATHS if not route_takes(rules, r)] == []
    assert [p for p in NOT_ROUTED if route_takes(rules, p)] == []
    assert {b["name"] for r in rules for b in r["backendRefs"]} == {"loki-gateway"}
    assert route_takes([{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}], "/otlp/v1/logs")  # can fail


def otelkv_file_config(
    pod: dict[str, Any], container: dict[str, Any], configmaps: list[dict[str, Any]], tmp_path: Path
) -> config.Config:
    """Load otelkv's --config file as the pod mounts it, the Secret's file stood in by a local one."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    [path] = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--config=")]
    source = mounts[str(Path(path).parent)]["configMap"]["name"]
    [configmap] = [c for c in configmaps if c["metadata"]["name"] == source]
    data = yaml.safe_load(configmap["data"][Path(path).name])
    secret_file = Path(data["forward"]["auth"]["password_file"])
    secret = mounts[str(secret_file.parent)]["secret"]
    assert secret["secretName"] == LOKI_SECRET and secret_file.name in {i["path"] for i in secret["items"]}
    tmp_path.mkdir()
    (tmp_path / "password").write_text("stand-in\n")
    data["forward"]["auth"]["password_file"] = str(tmp_path / "password")
    if "delivery" in data:  # the store, on its volume in the pod
        data["delivery"]["store_path"] = str(tmp_path / "otelkv.db")
    (tmp_path / "otelkv.yaml").write_text(yaml.safe_dump(data))
    return config.load(tmp_path / "otelkv.yaml", environ={})


def test_loki_asks_for_basic_auth_and_every_client_has_it(tmp_path: Path) -> None:
    assert loki_values()["gateway"]["basicAuth"] == {"enabled": True, "existingSecret": LOKI_SECRET}
    values = load(ROOT / "collector-config/values-sidecar.yaml")
    [sidecar] = values["extraContainers"]
    pod = collector_pod(values)
    sidecar_cfg = otelkv_file_config(pod, sidecar, values["extraManifests"], tmp_path / "a")
    rendered = render(DEPLOY / "apps/otelkv")
    deployment = next(o for o in rendered if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    configmaps = [o for o in rendered if o["kind"] == "ConfigMap"]
    standalone_cfg = otelkv_file_config(deployment, deployment["containers"][0], configmaps, tmp_path / "b")
    for cfg in (sidecar_cfg, standalone_cfg):
        assert cfg.forward.auth.username == "otelkv" and cfg.forward.auth.password_file
    datasource = yaml.safe_load(load(DEPLOY / "apps/monitoring/datasource.yaml")["data"]["loki-kubevirt.yaml"])
    [ds] = datasource["datasources"]
    assert ds["basicAuth"] is True and ds["basicAuthUser"] == "grafana"
    password = ds["secureJsonData"]["basicAuthPassword"]  # Grafana's provisioning reads $VAR from its environment
    env = load(DEPLOY / "apps/monitoring/kube-prometheus-stack-values.yaml")["grafana"]["envValueFrom"]
    assert env[password.removeprefix("$")]["secretKeyRef"]["name"] == LOKI_SECRET
    docs = (ROOT / "docs/deployment.md").read_text()
    for namespace in ("loki", "observability", "otelkv", "monitoring"):
        assert f"kubectl -n {namespace} create secret generic {LOKI_SECRET}" in docs, namespace


def test_the_dashboard_folder_annotation_is_one_the_grafana_chart_reads() -> None:
    """grafana chart (10.5, values.yaml, templates/_pod.tpl and _config.tpl): the dashboard sidecar
    gets FOLDER_ANNOTATION only from ``sidecar.dashboards.folderAnnotation`` (default null), and the
    provider keeps the sidecar's sub-folders only with ``provider.foldersFromFilesStructure``
    (default false); kube-prometheus-stack sets neither. Without both, no folder appears."""
    generator = load(DEPLOY / "apps/monitoring/kustomization.yaml")["configMapGenerator"][0]
    [annotation] = generator["options"]["annotations"]
    dashboards = load(DEPLOY / "apps/monitoring/kube-prometheus-stack-values.yaml")["grafana"]["sidecar"]["dashboards"]
    assert dashboards["folderAnnotation"] == annotation
    assert dashboards["provider"]["foldersFromFilesStructure"] is True
    folder = generator["options"]["annotations"][annotation]
    assert f"*Dashboards → {folder} →" in (ROOT / "docs/deployment.md").read_text()


def test_rollouts_replace_one_pod_at_a_time() -> None:
    """Chart 0.170.0 templates/statefulset.yaml writes ``updateStrategy.type`` from
    ``rollout.strategy``: a StatefulSet's RollingUpdate replaces one pod at a time and never runs
    two pods of one identity (each pod keeps its own volumes); the leader election decides which
    pod watches (tests/test_leader_election.py). The standalone otelkv (one replica, one
    ReadWriteOnce store that two processes may not share) stays Recreate."""
    values = load(ROOT / "collector-config/values-sidecar.yaml")
    assert values["rollout"] == {"strategy": "RollingUpdate"}
    assert not values["rollout"].get("rollingUpdate")  # no maxUnavailable > 1: one pod at a time
    standalone = next(o for o in render(DEPLOY / "apps/otelkv") if o["kind"] == "Deployment")
    assert standalone["spec"]["strategy"] == {"type": "Recreate"}
    text = (ROOT / "docs/scaling.md").read_text()
    assert "## What a rollout costs" in text and "waits for the lease" in text


# -- hardening (issue 11 item 6; Pod Security and tokens: tests/test_deploy_security.py) ----------


def policy_allows(
    policies: list[dict[str, Any]], target: tuple[str, dict[str, str]], source: tuple[str, dict[str, str]], port: int
) -> bool:
    """NetworkPolicy ingress semantics (matchLabels only): a pod no policy selects takes all; else
    some rule of a selecting policy must match the source peer and the port. A peer with both
    selectors needs both; a podSelector alone means the policy's own namespace."""

    def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())

    (target_ns, target_labels), (source_ns, source_labels) = target, source
    namespace_labels = {"kubernetes.io/metadata.name": source_ns}
    here = [p for p in policies if p["metadata"]["namespace"] == target_ns]
    selecting = [p for p in here if matches(p["spec"]["podSelector"], target_labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            if "ports" in rule and port not in {p["port"] for p in rule["ports"]}:
                continue
            for peer in rule.get("from", [{}]):
                ns_ok = (
                    matches(peer["namespaceSelector"], namespace_labels)
                    if "namespaceSelector" in peer
                    else source_ns == policy["metadata"]["namespace"] or not peer
                )
                if ns_ok and matches(peer.get("podSelector", {}), source_labels):
                    return True
    return False


COLLECTOR_POD = (
    "observability",
    {"app.kubernetes.io/name": "opentelemetry-collector", "app.kubernetes.io/instance": "otel-collector"},
)
GRAFANA_POD = ("monitoring", {"app.kubernetes.io/name": "grafana"})
PROMETHEUS_POD = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
STANDALONE_POD = ("otelkv", {"app.kubernetes.io/name": "otelkv"})
STRANGER_POD = ("default", {"app.kubernetes.io/name": "opentelemetry-collector"})


def test_only_the_collector_reaches_otelkvs_otlp_ports() -> None:
    policies = [o for o in render(DEPLOY / "apps/otelkv") if o["kind"] == "NetworkPolicy"]
    for port in (4319, 4320):
        assert policy_allows(policies, STANDALONE_POD, COLLECTOR_POD, port)
        for other in (GRAFANA_POD, PROMETHEUS_POD, STRANGER_POD):
            assert not policy_allows(policies, STANDALONE_POD, other, port), (other, port)
    assert policy_allows([], STANDALONE_POD, STRANGER_POD, 4319)  # no policy: open (what we had)
    assert policy_allows(policies, STANDALONE_POD, PROMETHEUS_POD, 4321)  # the admin listener
    assert not policy_allows(policies, STANDALONE_POD, STRANGER_POD, 4321)


def test_prometheus_scrapes_otelkvs_metrics_in_both_forms() -> None:
    """The standalone's PodMonitor names the container port of ``--admin-listen`` (/metrics); the
    sidecar pushes its metrics to the collector (``metrics_otlp_endpoint``), whose prometheus/otelkv
    exporter serves them on the port the collector pod's PodMonitor scrapes. kube-prometheus-stack
    selects monitors labelled ``release: <its release>`` by default."""
    values = load(ROOT / "collector-config/values-sidecar.yaml")
    standalone = next(o for o in render(DEPLOY / "apps/otelkv") if o["kind"] == "Deployment")
    container = standalone["spec"]["template"]["spec"]["containers"][0]
    [monitor] = [o for o in render(DEPLOY / "apps/otelkv") if o["kind"] == "PodMonitor"]
    assert monitor["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    [endpoint] = [e for e in monitor["spec"]["podMetricsEndpoints"] if e["port"] in ports]
    [admin] = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--admin-listen=")]
    assert config.split_host_port(admin)[1] == ports[endpoint["port"]] == 4321 and endpoint["path"] == "/metrics"
    # the sidecar: OTLP push -> the collector's otlp/otelkv receiver -> prometheus/otelkv -> the port scraped
    [collector_monitor] = [o for o in render(DEPLOY / "optional") if o["kind"] == "PodMonitor"]
    assert collector_monitor["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    assert collector_monitor["spec"]["selector"]["matchLabels"].items() <= COLLECTOR_POD[1].items()
    merged = collector_config(values)
    pipeline = merged["service"]["pipelines"]["metrics/otelkv"]
    [receiver], [exporter] = pipeline["receivers"], pipeline["exporters"]
    [sidecar] = values["extraContainers"]
    pushed = {e["name"]: e["value"] for e in sidecar["env"]}["OTELKV_METRICS_OTLP_ENDPOINT"]
    assert merged["receivers"][receiver]["protocols"]["grpc"]["endpoint"] == pushed == "127.0.0.1:4317"
    served = config.split_host_port(merged["exporters"][exporter]["endpoint"])[1]
    scraped = {e["port"] for e in collector_monitor["spec"]["podMetricsEndpoints"]}
    [name] = [n for n, p in collector_ports(values).items() if p["containerPort"] == served]
    assert name in scraped and served == 8889


def test_only_otelkv_grafana_and_the_route_reach_loki() -> None:
    policies = [o for o in render(DEPLOY / "apps/loki") if o["kind"] == "NetworkPolicy"]
    gateway = ("loki", {"app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "gateway"})
    loki = ("loki", {"app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "single-binary"})
    for source in (COLLECTOR_POD, STANDALONE_POD, GRAFANA_POD, ("gateway-system", {"app": "envoy"})):
        assert policy_allows(policies, gateway, source, 8080), source
    for source in (PROMETHEUS_POD, STRANGER_POD, ("monitoring", {"app.kubernetes.io/name": "otelkv"})):
        assert not policy_allows(policies, gateway, source, 8080), source
    assert policy_allows(policies, loki, ("loki", gateway[1]), 3100)
    assert policy_allows(policies, loki, PROMETHEUS_POD, 3100)
    for source in (COLLECTOR_POD, STANDALONE_POD, GRAFANA_POD, STRANGER_POD):
        assert not policy_allows(policies, loki, source, 3100), source


def test_no_pod_disruption_budget_that_protects_nothing() -> None:
    """maxUnavailable: 1 on one replica allows every eviction: it promised what it did not do. The
    collector's two pods have one (chart templates/pdb.yaml), fewer unavailable than replicas."""
    for directory in (DEPLOY, DEPLOY / "apps/otelkv"):
        assert not [o for o in render(directory) if o["kind"] == "PodDisruptionBudget"]
    collector = collector_workload(load(ROOT / "collector-config/values-sidecar.yaml"))
    assert collector["pdb"] is not None and collector["pdb"]["maxUnavailable"] < collector["spec"]["replicas"]


def test_versions_and_limits_in_the_docs_are_those_of_the_files() -> None:
    """core v0.144.0 renamed the exporter to ``otlp_grpc``; chart 0.170.0 added
    ``useK8sEventsReceiver`` (UPGRADING.md, "0.169.0 to 0.170.0"); the leader election and the
    initial state are taken as at contrib v0.158.0, the pinned version (tests/test_leader_election.py)."""
    docs = (ROOT / "docs/deployment.md").read_text()
    readme = (ROOT / "collector-config/README.md").read_text()
    for text in (docs, readme):
        assert "v0.158.0 or later" in text and "0.170.0 or later" in text
        assert "v0.159" not in text
    app = load(DEPLOY / "apps/otel-collector/application.yaml")
    assert app["spec"]["sources"][0]["targetRevision"] == "0.170.0"
    values = load(ROOT / "collector-config/values-sidecar.yaml")
    standalone = load(ROOT / "collector-config/collector-standalone.yaml")
    for cfg in (values["config"], standalone):
        exporter = cfg["exporters"]["otlp_grpc/otelkv"]
        assert exporter["retry_on_failure"]["max_elapsed_time"] == "300s"
        assert exporter["sending_queue"]["storage"] == "file_storage"  # on disk (issue 19 item 6)
    assert "`retry_on_failure.max_elapsed_time` (**300 s**)" in docs and "**on disk**" in docs
    assert "sending_queue.storage: file_storage" in docs and "delivery.mode: queue" in docs


def probes(container: dict[str, Any]) -> dict[str, str]:
    return {kind: container[kind]["httpGet"]["path"] for kind in ("livenessProbe", "readinessProbe")}


def test_probes_ask_what_otelkv_itself_controls() -> None:
    """/readyz (gRPC health: service ``readiness``) turns unready when Loki fails (docs/serve.md): as
    the sidecar's readiness it would mark the whole collector pod NotReady, as the standalone's it
    would empty the Service. The sidecar asks gRPC health with service "" (liveness) for both."""
    [sidecar] = load(ROOT / "collector-config/values-sidecar.yaml")["extraContainers"]
    standalone = next(o for o in render(DEPLOY / "apps/otelkv") if o["kind"] == "Deployment")
    assert probes(standalone["spec"]["template"]["spec"]["containers"][0]) == {
        "livenessProbe": "/healthz",
        "readinessProbe": "/healthz",
    }
    health = {e["name"]: e["value"] for e in sidecar["env"]}["OTELKV_ADMIN_GRPC_LISTEN"]
    port = config.split_host_port(health)[1]
    for probe in ("livenessProbe", "readinessProbe"):
        assert sidecar[probe]["grpc"] == {"port": port}, probe  # no service: "", never "readiness"
    docs = (ROOT / "docs/deployment.md").read_text()
    assert "**`/healthz` for liveness and readiness**" in docs
    assert '**gRPC health service `""` for liveness and readiness**' in docs


# -- KubeVirt's migration objects through the k8sobjects receiver (issue 10, deploy part) ---------

VMIM_RULE = {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachineinstancemigrations"]}


def collector_forms() -> dict[str, dict[str, Any]]:
    values = load(ROOT / "collector-config/values-sidecar.yaml")
    merged = collector_config(values)  # as Helm merges it into the chart's defaults
    return {"sidecar": merged, "standalone": load(ROOT / "collector-config/collector-standalone.yaml")}


@pytest.mark.parametrize("form", ["sidecar", "standalone"])
def test_migration_objects_are_watched_and_go_their_own_way(form: str) -> None:
    """contrib receiver/k8sobjectsreceiver: ``objects[].name`` is the resource, ``group`` picks
    among groups that serve it, ``mode: watch`` streams changes. Its records carry no
    ``k8s.object.kind``, so the ``filter/kubevirt`` of the events pipeline would drop every one:
    they get a pipeline of their own, to the same exporter, with nothing else in it."""
    cfg = collector_forms()[form]
    [vmim] = cfg["receivers"]["k8sobjects"]["objects"]
    assert cfg["receivers"]["k8sobjects"]["include_initial_state"] is True  # receiver-wide, watch only
    assert vmim == {"name": "virtualmachineinstancemigrations", "group": "kubevirt.io", "mode": "watch"}
    pipelines = {n: p for n, p in cfg["service"]["pipelines"].items() if n.startswith("logs")}
    assert set(pipelines) == {"logs", "logs/vmim"}
    assert pipelines["logs"]["receivers"] == ["k8s_events"]  # exactly the events
    objects = pipelines["logs/vmim"]
    assert objects["receivers"] == ["k8sobjects"]
    assert not [p for p in objects["processors"] if p.startswith("filter")]
    assert objects["processors"] == ["memory_limiter", "resource/cluster", "batch"]
    assert objects["exporters"] == pipelines["logs"]["exporters"] == ["otlp_grpc/otelkv"]


def test_the_collector_may_list_and_watch_migration_objects() -> None:
    """Chart 0.170.0 templates/clusterrole.yaml: ``clusterRole.rules`` are added to the ClusterRole
    the kubernetesEvents preset creates (values.yaml: "ClusterRole rules must be added manually via
    clusterRole.rules" for k8sobjects). The receiver's README: watch mode needs ``list`` too (its
    first list for a resourceVersion, and again after 410 Gone)."""
    values = load(ROOT / "collector-config/values-sidecar.yaml")
    assert values["presets"]["kubernetesEvents"]["enabled"] is True  # the chart makes the ClusterRole
    [rule] = [r for r in values["clusterRole"]["rules"] if {k: r[k] for k in VMIM_RULE} == VMIM_RULE]
    assert set(rule["verbs"]) == {"list", "watch"}
    documented = [yaml.safe_load(b) for b in doc_blocks("yaml") if "clusterRole" in b]
    assert {"clusterRole": {"rules": values["clusterRole"]["rules"]}} in documented
    docs = (ROOT / "docs/deployment.md").read_text()
    assert "## Migration objects" in docs and "include_initial_state" in docs


def test_the_preset_appends_to_the_events_pipeline_only() -> None:
    """Chart 0.170.0 _config.tpl ``applyKubernetesEventsConfig``: the preset's receiver is appended
    to ``service.pipelines.logs`` (``append … | uniq``) and to no other pipeline. The
    kubernetesObjects preset (``applyKubernetesObjectsConfig``) would append ``k8sobjects`` to
    ``logs`` too, where filter/kubevirt drops its records, and add its objects to ours: it stays off."""
    values = load(ROOT / "collector-config/values-sidecar.yaml")
    assert set(values["presets"]) == {"kubernetesEvents"}  # chart default for the others: off
    pipelines = collector_config(values)["service"]["pipelines"]  # the chart's defaults merged, the preset applied
    rendered = {name: list(p["receivers"]) for name, p in pipelines.items()}
    assert rendered == {"logs": ["k8s_events"], "logs/vmim": ["k8sobjects"], "metrics/otelkv": ["otlp/otelkv"]}
