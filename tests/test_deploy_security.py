"""Least privilege in deploy/ (issue 19 items 1, 2, 4): the rules sidecar watches its own
namespace with namespaced RBAC, no pod behind the route holds a token, the gateway splits writers
from readers with the tenant pinned, and every pod passes Pod Security "restricted" in namespaces
that enforce it. Chart facts are read from the vendored charts (tests/data/charts, SOURCE.md)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.deploy_charts import (
    LOKI_CHART,
    collector_pod,
    holds_token,
    load,
    loki_gateway_pod,
    loki_rbac,
    loki_single_binary_pod,
    loki_values,
    template,
    template_says,
)
from tests.pod_security import restricted_violations
from tests.test_deploy import DEPLOY, render

LOKI_APP = DEPLOY / "apps/loki/application.yaml"


def loki_app_values() -> dict[str, Any]:
    values: dict[str, Any] = load(LOKI_APP)["spec"]["source"]["helm"]["valuesObject"]
    return values


# -- item 1: the rules sidecar's reach, and tokens -----------------------------------------------


def test_the_charts_default_rbac_is_what_the_finding_says() -> None:
    """Chart 6.29.0: templates/backend/clusterrole.yaml grants configmaps and secrets cluster-wide
    unless rbac.namespaced; templates/role.yaml grants the sidecar's rules only with sccEnabled."""
    assert template_says(
        LOKI_CHART,
        "templates/backend/clusterrole.yaml",
        "{{- if and (not .Values.rbac.namespaced) (not .Values.rbac.useExistingRole) }}",
        'resources: ["configmaps", "secrets"]',
    )
    assert template_says(
        LOKI_CHART,
        "templates/role.yaml",
        "{{- if or .Values.rbac.pspEnabled .Values.rbac.sccEnabled }}",
        "{{- if and .Values.rbac.namespaced .Values.sidecar.rules.enabled }}",
    )
    defaults = loki_rbac({"sidecar": {"rules": {"searchNamespace": "ALL"}}})
    assert [o["kind"] for o in defaults] == ["ClusterRole", "ClusterRoleBinding"]
    assert "secrets" in defaults[0]["rules"][0]["resources"]


def test_the_rules_sidecar_reads_configmaps_of_its_own_namespace_only() -> None:
    values = loki_app_values()
    objects = loki_rbac(values)
    assert not [o for o in objects if o["kind"].startswith("Cluster")]
    [role] = [o for o in objects if o["kind"] == "Role"]
    [binding] = [o for o in objects if o["kind"] == "RoleBinding"]
    assert role["metadata"]["namespace"] == "loki"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "loki", "namespace": "loki"}]
    sidecar = loki_single_binary_pod(values)["containers"][0]
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["NAMESPACE"] == "loki" and env["RESOURCE"] == "configmap" and env["UNIQUE_FILENAMES"] == "true"
    # the rules ConfigMap we ship lives there
    rules = next(o for o in render(DEPLOY / "apps/monitoring") if o["metadata"]["name"] == "kubevirt-migrations-rules")
    assert rules["metadata"]["namespace"] == "loki"


def test_only_the_rules_sidecar_holds_an_api_token() -> None:
    """The gateway (behind the HTTPRoute) and Loki share the ServiceAccount; the chart has no
    per-container switch (templates/gateway/deployment-gateway-nginx.yaml sets no
    automountServiceAccountToken: the ServiceAccount's applies)."""
    text = template(LOKI_CHART, "templates/gateway/deployment-gateway-nginx.yaml")
    assert "automountServiceAccountToken" not in text
    assert 'serviceAccountName: {{ include "loki.serviceAccountName" . }}' in text
    values = loki_app_values()
    assert not holds_token(loki_gateway_pod(values), "nginx")
    pod = loki_single_binary_pod(values)
    assert holds_token(pod, "loki-sc-rules") and not holds_token(pod, "loki")
    assert holds_token(loki_gateway_pod({}), "nginx")  # the chart's default: it did
    collector = collector_pod(load(ROOT / "collector-config/values-sidecar.yaml"))
    assert holds_token(collector, "opentelemetry-collector") and not holds_token(collector, "otelkv")


# -- item 2: writers and readers ---------------------------------------------------------------


def nginx_maps(snippet: str) -> dict[str, tuple[str, dict[str, str]]]:
    """The ``map`` blocks of an nginx snippet: variable -> (source expression, {key: value})."""
    maps = {}
    for source, variable, body in re.findall(r'map\s+"([^"]+)"\s+(\$\w+)\s*\{(.*?)\n\s*\}', snippet, re.S):
        entries = dict(re.findall(r'^\s*("?[^"\s]+"?|default)\s+(\S+);', body, re.M))
        maps[variable] = (source, {k.strip('"'): v for k, v in entries.items()})
    return maps


def nginx_map(entries: dict[str, str], value: str) -> str:
    """nginx's map: an exact key first, then the regular expressions in order, then default."""
    if value in entries and not value.startswith("~"):
        return entries[value]
    for key, result in entries.items():
        if key.startswith("~") and re.search(key[1:], value):
            return result
    return entries["default"]


def gateway_decides(user: str, method: str, uri: str, tenant: str) -> int:
    """403 by the server snippet's ifs, else what auth_basic leaves (401 without a user, else 200)."""
    nginx = loki_app_values()["gateway"]["nginxConfig"]
    maps = nginx_maps(nginx["httpSnippet"])
    variables = {"$remote_user": user, "$request_method": method, "$uri": uri, "$http_x_scope_orgid": tenant}
    for variable, (source, entries) in maps.items():
        key = re.sub(r"\$\w+", lambda m: variables[m.group(0)], source)
        variables[variable] = nginx_map(entries, key)
    for variable in re.findall(r"if \((\$\w+) = 0\) \{\s*return 403;", nginx["serverSnippet"]):
        if variables[variable] == "0":
            return 403
    if uri == "/":
        return 200  # location = / { auth_basic off; }
    return 200 if user else 401


WRITES = [("POST", "/otlp/v1/logs")]
READS = [
    ("GET", "/loki/api/v1/query_range"),
    ("POST", "/loki/api/v1/query_range"),
    ("GET", "/loki/api/v1/labels"),
    ("GET", "/loki/api/v1/label/service_name/values"),
    ("GET", "/loki/api/v1/series"),
    ("GET", "/loki/api/v1/index/volume"),
    ("GET", "/loki/api/v1/detected_fields"),
]
NOBODY = [
    ("POST", "/loki/api/v1/delete"),
    ("GET", "/loki/api/v1/delete"),
    ("POST", "/flush"),
    ("GET", "/config"),
    ("GET", "/loki/api/v1/rules"),
    ("POST", "/loki/api/v1/rules/kubevirt"),
    ("GET", "/ring"),
    ("GET", "/api/prom/rules"),
    ("POST", "/loki/api/v1/push"),
    ("GET", "/loki/api/v1/status/buildinfo"),
    ("GET", "/loki/api/v1/query_range/../delete"),
]


def test_the_chart_has_one_auth_basic_and_snippets_where_we_put_ours() -> None:
    """Chart 6.29.0 templates/_helpers.tpl ``loki.nginxFile``: ``auth_basic`` once, for the whole
    server; httpSnippet inside ``http {}``, serverSnippet at the end of ``server {}``; the query
    location sets its own proxy_set_header, so an http-level ``X-Scope-OrgID`` (the chart's
    ``loki.tenants`` way) would not reach the query paths: we refuse a wrong tenant instead."""
    nginx = template(LOKI_CHART, "templates/_helpers.tpl")
    assert nginx.count('auth_basic           "Loki";') == 1
    assert "{{- with .Values.gateway.nginxConfig.httpSnippet }}" in nginx
    assert "{{- with .Values.gateway.nginxConfig.serverSnippet }}" in nginx
    query = nginx.split("location ^~ /loki/api/v1/ {", 1)[1].split("}", 1)[0]
    assert "proxy_set_header X-Query-Tags" in query


@pytest.mark.parametrize(("method", "uri"), WRITES + READS + NOBODY)
def test_each_user_does_only_its_part_for_its_tenant(method: str, uri: str) -> None:
    decided = (gateway_decides("otelkv", method, uri, "kubevirt"), gateway_decides("grafana", method, uri, "kubevirt"))
    if (method, uri) in WRITES:
        assert decided == (200, 403)
    elif (method, uri) in READS:
        assert decided == (403, 200)
    else:
        assert decided == (403, 403)
    if (method, uri) in WRITES + READS:
        user = "otelkv" if (method, uri) in WRITES else "grafana"
        for tenant in ("other", "", "kubevirt|other"):
            assert gateway_decides(user, method, uri, tenant) == 403, tenant
        assert gateway_decides("", method, uri, "kubevirt") == 401  # no credentials: auth_basic's 401
        assert gateway_decides("mallory", method, uri, "kubevirt") == 403
    assert gateway_decides("", "GET", "/", "") == 200  # the readiness probe


# -- item 4: Pod Security "restricted" -----------------------------------------------------------

BAD_PODS = [
    ({"hostNetwork": True}, "pod: Host Namespaces (hostNetwork)"),
    ({"hostIPC": True}, "pod: Host Namespaces (hostIPC)"),
    ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "volume h: HostPath Volumes"),
    ({"volumes": [{"name": "n", "nfs": {"server": "x", "path": "/"}}]}, "volume n: Volume Types"),
    ({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}, "pod: Sysctls (kernel.msgmax)"),
    ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, "pod: Seccomp"),
    ({"securityContext": {"runAsUser": 0}}, "pod: Running as Non-root user"),
    ({"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}, "pod: SELinux"),
    ({"securityContext": {"windowsOptions": {"hostProcess": True}}}, "pod: HostProcess"),
    ({"c": {"privileged": True}}, "c: Privileged Containers"),
    ({"c": {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}}, "c: Capabilities (baseline)"),
    ({"c": {"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}}, "c: Capabilities (add)"),
    ({"c": {"capabilities": {}}}, "c: Capabilities (drop ALL)"),
    ({"c": {"allowPrivilegeEscalation": True}}, "c: Privilege Escalation"),
    ({"c": {"runAsNonRoot": False}}, "c: Running as Non-root"),
    ({"c": {"runAsUser": 0}}, "c: Running as Non-root user"),
    ({"c": {"procMount": "Unmasked"}}, "c: /proc Mount Type"),
    ({"c": {"appArmorProfile": {"type": "Unconfined"}}}, "c: AppArmor"),
    ({"c": {"seccompProfile": {"type": "Unconfined"}}}, "c: Seccomp"),
    ({"c": {"seLinuxOptions": {"user": "root"}}}, "c: SELinux"),
    ({"ports": [{"containerPort": 80, "hostPort": 80}]}, "c: Host Ports"),
    ({"init": {"allowPrivilegeEscalation": True}}, "i: Privilege Escalation"),
]


def good_pod() -> dict[str, Any]:
    sc = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "securityContext": dict(sc)}],
        "initContainers": [{"name": "i", "securityContext": dict(sc)}],
        "volumes": [],
    }


@pytest.mark.parametrize(("change", "finding"), BAD_PODS, ids=[f for _, f in BAD_PODS])
def test_the_restricted_check_finds_each_control(change: dict[str, Any], finding: str) -> None:
    pod = good_pod()
    assert restricted_violations(pod) == []
    for key, value in change.items():
        if key in ("c", "init"):
            container = pod["containers" if key == "c" else "initContainers"][0]
            container["securityContext"] = {**container["securityContext"], **value}
        elif key == "ports":
            pod["containers"][0]["ports"] = value
        elif key == "securityContext":
            pod["securityContext"] = {**pod["securityContext"], **value}
        else:
            pod[key] = value
    assert finding in restricted_violations(pod)
    annotated = restricted_violations(good_pod(), {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"})
    assert annotated == ["c: AppArmor"]


def every_pod() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every pod spec deploy/ makes, with its namespace."""
    loki = loki_app_values()
    standalone = next(o for o in render(DEPLOY / "apps/otelkv") if o["kind"] == "Deployment")
    return {
        "otel-collector": ("observability", collector_pod(load(ROOT / "collector-config/values-sidecar.yaml"))),
        "loki single binary": ("loki", loki_single_binary_pod(loki)),
        "loki gateway": ("loki", loki_gateway_pod(loki)),
        "otelkv standalone": ("otelkv", standalone["spec"]["template"]["spec"]),
    }


@pytest.mark.parametrize("name", list(every_pod()))
def test_every_pod_passes_restricted(name: str) -> None:
    _, pod = every_pod()[name]
    assert restricted_violations(pod) == []


def test_the_chart_defaults_do_not_pass_and_our_namespaces_enforce_restricted() -> None:
    """Loki 6.29.0 values.yaml: no seccompProfile in loki.podSecurityContext, gateway.podSecurityContext
    or sidecar.securityContext (the finding); the collector chart's security contexts are empty."""
    defaults = load(LOKI_CHART / "values.yaml")
    assert "seccompProfile" not in defaults["loki"]["podSecurityContext"]
    assert "Seccomp" in " ".join(restricted_violations(loki_single_binary_pod({})))
    assert "Seccomp" in " ".join(restricted_violations(loki_gateway_pod({})))
    namespaces = {
        o["metadata"]["name"]: o
        for d in (DEPLOY, DEPLOY / "apps/otelkv")
        for o in render(d)
        if o["kind"] == "Namespace"
    }
    assert {ns for ns, _ in every_pod().values()} == set(namespaces) == {"observability", "loki", "otelkv"}
    for namespace in namespaces.values():
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", namespace["metadata"]["name"]
    assert loki_values(loki_app_values())["loki"]["podSecurityContext"]["runAsUser"] == 10001  # merged, not replaced
