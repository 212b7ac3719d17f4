"""The Argo CD tree (issue 19 items 3, 7, 10, 11): a missing CRD blocks nothing but the optional
app, the app of apps and its AppProject, waves, finalizers, pinned revisions, namespaces that a
sync never deletes, one datasource, and egress limited to what each pod needs."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import yaml

from tests.conftest import ROOT
from tests.deploy_charts import collector_values, load, loki_values
from tests.test_deploy import DEPLOY, render

CORE_GROUPS = {"", "apps", "networking.k8s.io", "rbac.authorization.k8s.io", "policy"}
OPTIONAL = "SkipDryRunOnMissingResource=true"


def group(obj: dict[str, Any]) -> str:
    return str(obj["apiVersion"].rpartition("/")[0])


def applications() -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in render(DEPLOY) if o["kind"] == "Application"}


# -- item 3 ---------------------------------------------------------------------------------------


def test_nothing_the_parent_syncs_needs_a_crd_beyond_argo_cd() -> None:
    """The parent's sync fails whole on an unknown kind: the root holds only Kubernetes' own kinds
    and Argo CD's Application; CRD kinds live in the otelkv-optional app, each marked to skip its
    dry run, and that app is the last wave."""
    kinds = {(group(o), o["kind"]) for o in render(DEPLOY)}
    assert {k for k in kinds if k[0] not in CORE_GROUPS} == {("argoproj.io", "Application")}
    optional = render(DEPLOY / "optional")
    assert {o["kind"] for o in optional} == {"HTTPRoute", "PodMonitor", "PrometheusRule"}
    for obj in optional + [o for o in render(DEPLOY / "apps/otelkv") if group(o) not in CORE_GROUPS]:
        assert OPTIONAL in obj["metadata"]["annotations"]["argocd.argoproj.io/sync-options"], obj["kind"]
    app = applications()["otelkv-optional"]
    assert app["spec"]["source"]["path"] == "deploy/optional" and OPTIONAL in app["spec"]["syncPolicy"]["syncOptions"]
    docs = (ROOT / "docs/deployment.md").read_text()
    prerequisites = docs.split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "httproutes.gateway.networking.k8s.io",
        "podmonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "Gateway",
        "StorageClass",
        "longhorn",
    ):
        assert needed in prerequisites, needed


# -- item 7 ---------------------------------------------------------------------------------------


def test_the_app_of_apps_waves_finalizers_and_revisions() -> None:
    bootstrap = {o["kind"]: o for o in render(DEPLOY / "bootstrap")}
    parent, project = bootstrap["Application"], bootstrap["AppProject"]
    assert parent["spec"]["source"]["path"] == "deploy"
    tag = parent["spec"]["source"]["targetRevision"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    apps = applications()
    assert set(apps) == {"loki", "otel-collector", "otelkv-optional"}
    waves = {n: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for n, a in apps.items()}
    assert waves["loki"] < waves["otel-collector"] < waves["otelkv-optional"]
    for app in [parent, *apps.values()]:
        assert app["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
        assert app["spec"]["project"] == project["metadata"]["name"]
        sources = app["spec"].get("sources") or [app["spec"]["source"]]
        for source in sources:
            if "github.com" in source["repoURL"]:
                assert source["targetRevision"] == tag, app["metadata"]["name"]  # the parent's revision
            assert source["targetRevision"] not in ("main", "master", "HEAD")
        assert "CreateNamespace=true" not in app["spec"]["syncPolicy"].get("syncOptions", [])
    namespaces = [o for d in (DEPLOY, DEPLOY / "apps/otelkv") for o in render(d) if o["kind"] == "Namespace"]
    for namespace in namespaces:
        annotations = namespace["metadata"]["annotations"]
        assert set(annotations["argocd.argoproj.io/sync-options"].split(",")) >= {"Prune=false", "Delete=false"}
        assert int(annotations["argocd.argoproj.io/sync-wave"]) < min(waves.values())


def chart_kinds() -> set[tuple[str, str]]:
    """What the two charts render with our values (templates named): collector — deployment.yaml,
    configmap.yaml, serviceaccount.yaml, clusterrole(binding).yaml (the events preset), no
    service.yaml (service.enabled false), extraManifests; Loki single binary and the HA option —
    statefulsets, gateway Deployment, ConfigMaps, Services, ServiceAccount, PodDisruptionBudgets
    (gateway with 2 replicas, the scalable targets), extraObjects."""
    values = load(ROOT / "collector-config/values-sidecar.yaml")
    kinds = {
        ("apps", "Deployment"),
        ("", "ConfigMap"),
        ("", "ServiceAccount"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apps", "StatefulSet"),
        ("", "Service"),
        ("policy", "PodDisruptionBudget"),
    }
    assert collector_values(values)["service"]["enabled"] is False
    loki = load(DEPLOY / "apps/loki/application.yaml")["spec"]["source"]["helm"]["valuesObject"]
    extra = collector_values(values)["extraManifests"] + loki_values(loki)["extraObjects"]
    return kinds | {(group(o), o["kind"]) for o in extra}


def test_the_project_allows_exactly_the_kinds_and_namespaces_we_deploy() -> None:
    project = next(o for o in render(DEPLOY / "bootstrap") if o["kind"] == "AppProject")
    spec = project["spec"]
    allowed = {(k["group"], k["kind"]) for k in spec["namespaceResourceWhitelist"] + spec["clusterResourceWhitelist"]}
    rendered = [o for d in (DEPLOY, DEPLOY / "optional", DEPLOY / "apps/otelkv") for o in render(d)]
    needed = {(group(o), o["kind"]) for o in rendered} | chart_kinds()
    assert needed == allowed
    cluster_scoped = {(k["group"], k["kind"]) for k in spec["clusterResourceWhitelist"]}
    assert cluster_scoped == {
        ("", "Namespace"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    }
    destinations = {d["namespace"] for d in spec["destinations"]}
    used = {o["metadata"].get("namespace") for o in rendered if (group(o), o["kind"]) not in cluster_scoped}
    used |= {a["spec"]["destination"].get("namespace") for a in applications().values()} - {None}
    assert used - {None} <= destinations == {"argocd", "observability", "loki", "monitoring", "otelkv"}
    repos = {s["repoURL"] for a in applications().values() for s in a["spec"].get("sources") or [a["spec"]["source"]]}
    assert repos <= set(spec["sourceRepos"])


# -- item 10 --------------------------------------------------------------------------------------


def test_the_loki_datasource_is_defined_once() -> None:
    uids = []
    for path in sorted((DEPLOY / "apps/monitoring").glob("*.yaml")):
        text = path.read_text()
        uids += re.findall(r"^\s*uid: (\S+)", text, re.M)
        for doc in yaml.safe_load_all(text):
            for value in (doc.get("data") or {}).values() if isinstance(doc, dict) else []:
                if "datasources:" in value:
                    assert [d["uid"] for d in yaml.safe_load(value)["datasources"]] == ["loki-kubevirt"]
    assert uids == ["loki-kubevirt"]
    values = load(DEPLOY / "apps/monitoring/kube-prometheus-stack-values.yaml")
    assert "additionalDataSources" not in values["grafana"]


# -- item 11: egress --------------------------------------------------------------------------

Pod = tuple[str, dict[str, str]]
COLLECTOR: Pod = (
    "observability",
    {"app.kubernetes.io/name": "opentelemetry-collector", "app.kubernetes.io/instance": "otel-collector"},
)
GATEWAY: Pod = ("loki", {"app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "gateway"})
LOKI: Pod = ("loki", {"app.kubernetes.io/name": "loki", "app.kubernetes.io/component": "single-binary"})
STANDALONE: Pod = ("otelkv", {"app.kubernetes.io/name": "otelkv"})
DNS: Pod = ("kube-system", {"k8s-app": "kube-dns"})
ALERTMANAGER: Pod = ("monitoring", {"app.kubernetes.io/name": "alertmanager"})
API = "10.0.0.1"  # a control-plane node's address: not a pod
INTERNET = "203.0.113.7"


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def egress_allows(
    policies: list[dict[str, Any]], source: Pod, target: Pod | str, port: int, proto: str = "TCP"
) -> bool:
    """NetworkPolicy egress semantics (matchLabels, ipBlock without except): a pod no Egress policy
    selects may go anywhere; else some egress rule of a selecting policy must match the peer
    (a pod, or an address for ipBlock) and the port. An empty peer list or port list matches all."""
    namespace, labels = source
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == namespace
        and "Egress" in p["spec"].get("policyTypes", [])
        and matches(p["spec"]["podSelector"], labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("egress", []):
            ports = rule.get("ports")
            if ports and not any(p["port"] == port and p.get("protocol", "TCP") == proto for p in ports):
                continue
            for peer in rule.get("to") or [{}]:
                if isinstance(target, str):  # an address outside the pod network
                    block = peer.get("ipBlock")
                    if not peer or (block and ipaddress.ip_address(target) in ipaddress.ip_network(block["cidr"])):
                        return True
                    continue
                if "ipBlock" in peer:
                    continue
                target_ns, target_labels = target
                ns_ok = (
                    matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": target_ns})
                    if "namespaceSelector" in peer
                    else target_ns == namespace
                )
                if ns_ok and matches(peer.get("podSelector", {}), target_labels):
                    return True
    return False


def policies() -> list[dict[str, Any]]:
    rendered = render(DEPLOY) + render(DEPLOY / "apps/otelkv")
    return [o for o in rendered if o["kind"] == "NetworkPolicy"]


def test_every_namespace_we_create_denies_by_default() -> None:
    for namespace in ("observability", "loki", "otelkv"):
        [deny] = [
            p
            for p in policies()
            if p["metadata"]["namespace"] == namespace
            and p["spec"]["podSelector"] == {}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_egress_is_exactly_dns_the_api_server_loki_and_lokis_own_needs() -> None:
    p = policies()
    allowed: list[tuple[Pod, list[tuple[Pod | str, int, str]]]] = [
        (
            COLLECTOR,
            [(DNS, 53, "UDP"), (DNS, 53, "TCP"), (API, 443, "TCP"), (API, 6443, "TCP"), (GATEWAY, 8080, "TCP")],
        ),
        (STANDALONE, [(DNS, 53, "UDP"), (DNS, 53, "TCP"), (GATEWAY, 8080, "TCP")]),
        (GATEWAY, [(DNS, 53, "UDP"), (DNS, 53, "TCP"), (LOKI, 3100, "TCP")]),
        (
            LOKI,
            [
                (DNS, 53, "UDP"),
                (LOKI, 3100, "TCP"),
                (LOKI, 9095, "TCP"),
                (LOKI, 7946, "TCP"),
                (API, 6443, "TCP"),
                (ALERTMANAGER, 9093, "TCP"),
            ],
        ),
    ]
    for source, targets in allowed:
        for target, port, proto in targets:
            assert egress_allows(p, source, target, port, proto), (source, target, port)
    refused: list[tuple[Pod, list[tuple[Pod | str, int]]]] = [
        (COLLECTOR, [(LOKI, 3100), (INTERNET, 80), (ALERTMANAGER, 9093), (DNS, 8080)]),
        (STANDALONE, [(API, 443), (API, 6443), (LOKI, 3100), (INTERNET, 443)]),
        (GATEWAY, [(API, 443), (API, 6443), (INTERNET, 443), (ALERTMANAGER, 9093), (STANDALONE, 4319)]),
        (LOKI, [(INTERNET, 80), (GATEWAY, 8080), (STANDALONE, 4319)]),
    ]
    for source, denied in refused:
        for peer, number in denied:
            assert not egress_allows(p, source, peer, number), (source, peer, number)
    assert egress_allows([], GATEWAY, INTERNET, 443)  # no policy: open (what we had)
    docs = (ROOT / "docs/deployment.md").read_text()
    assert "is not a pod" in docs and "6443" in docs
