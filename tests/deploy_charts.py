"""The two Helm charts deploy/ installs, as far as the tests need them: chart values merged the
way Helm merges them, and the pod specs and objects the pinned templates make from them.

The charts' default values and the templates these models follow are vendored at the pinned
tags in tests/data/charts/ (SOURCE.md names the repository, tag and commit). Each model names
the template it follows, and ``template_says`` lets a test assert the very template lines a model
(or a fix) relies on, so a chart bump that changes them fails here first. No helm binary: the
project's machines reach no chart repository, and these models are what the tests need.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

CHARTS = ROOT / "tests" / "data" / "charts"
COLLECTOR_CHART = CHARTS / "opentelemetry-collector-0.170.0"
LOKI_CHART = CHARTS / "loki-6.29.0"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def template(chart: Path, path: str) -> str:
    """A vendored chart file, by its path inside the chart."""
    return (chart / path).read_text()


def template_says(chart: Path, path: str, *lines: str) -> bool:
    """Whether the template holds each of these lines (whitespace-trimmed, in any order)."""
    held = {line.strip() for line in template(chart, path).splitlines()}
    return all(line.strip() in held for line in lines)


def helm_merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values onto a chart's defaults (helm pkg/chartutil/coalesce.go):
    maps merge key by key, anything else (lists included) replaces, and ``null`` deletes the key."""
    out = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = helm_merge(out[key], value)
        else:
            out[key] = drop_nulls(copy.deepcopy(value))
    return out


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    return value


# -- opentelemetry-collector 0.170.0 ---------------------------------------------------------------


def collector_values(values: dict[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = load(COLLECTOR_CHART / "values.yaml")
    return helm_merge(defaults, values)


def collector_config(values: dict[str, Any]) -> dict[str, Any]:
    """The collector's relay.yaml (templates/_config.tpl ``deploymentConfig``): ``config`` as merged,
    then the kubernetesEvents preset (``applyKubernetesEventsConfig``: its receiver merged under the
    config, and appended to ``service.pipelines.logs.receivers`` with ``uniq``). The other presets
    stay off (asserted by the tests that use this)."""
    v = collector_values(values)
    config: dict[str, Any] = copy.deepcopy(v["config"])
    preset = v["presets"]["kubernetesEvents"]
    if preset["enabled"]:
        receiver = "k8s_events" if preset["useK8sEventsReceiver"] else "k8sobjects"
        added = {"k8s_events": {}} if receiver == "k8s_events" else {"k8sobjects": {"objects": [{"name": "events"}]}}
        config["receivers"] = {**added, **config.get("receivers", {})}
        logs = config.setdefault("service", {}).setdefault("pipelines", {}).setdefault("logs", {})
        logs["receivers"] = list(dict.fromkeys([*logs.get("receivers", []), receiver]))
    return config


def collector_ports(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The enabled entries of ``ports`` (templates/_config.tpl ``podPortsConfig`` and
    ``servicePortsConfig`` both take exactly these)."""
    return {name: port for name, port in collector_values(values)["ports"].items() if port.get("enabled")}


def collector_service_ports(values: dict[str, Any]) -> dict[str, int]:
    """templates/service.yaml with _helpers.tpl ``serviceEnabled``: a Service unless
    ``service.enabled`` is false (mode deployment), with every enabled port."""
    v = collector_values(values)
    if v["service"].get("enabled", True) is False and not v["ingress"]["enabled"]:
        return {}
    return {name: port["servicePort"] for name, port in collector_ports(values).items()}


def collector_image(values: dict[str, Any]) -> str:
    """templates/_pod.tpl: ``repository@digest`` when ``image.digest`` is set, else
    ``repository:tag`` with the chart's appVersion for an empty tag."""
    image = collector_values(values)["image"]
    if image.get("digest"):
        return f"{image['repository']}@{image['digest']}"
    return f"{image['repository']}:{image.get('tag') or load(COLLECTOR_CHART / 'Chart.yaml')['appVersion']}"


def collector_pod(values: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of templates/deployment.yaml + _pod.tpl (mode deployment, not an agent: no
    hostPort): ``podSecurityContext`` for the pod, the collector container with ``securityContext``
    (the profiling and storeCheckpoints presets that override it are off), the enabled ports, the
    config volume then ``extraVolumeMounts``; ``extraContainers`` as given; volumes: the config map
    then ``extraVolumes``; ``hostNetwork``/``hostPID`` from values."""
    v = collector_values(values)
    assert not v["presets"]["profiling"]["enabled"] and not v["presets"]["logsCollection"]["enabled"]
    collector = {
        "name": "opentelemetry-collector",
        "image": collector_image(values),
        "securityContext": v["securityContext"],
        "ports": [
            {"name": n, "containerPort": p["containerPort"], "protocol": p["protocol"]}
            for n, p in collector_ports(values).items()
        ],
        "volumeMounts": [{"name": "opentelemetry-collector-configmap", "mountPath": "/conf"}, *v["extraVolumeMounts"]],
    }
    return {
        "automountServiceAccountToken": v["serviceAccount"]["automountServiceAccountToken"],
        "securityContext": v["podSecurityContext"],
        "hostNetwork": v["hostNetwork"],
        "hostPID": v["hostPID"],
        "affinity": v["affinity"],
        "containers": [collector, *v["extraContainers"]],
        "initContainers": v["initContainers"],
        "volumes": [
            # _helpers.tpl configName: the fullname and the workload's configmapSuffix
            # (templates/statefulset.yaml passes "-statefulset", deployment.yaml "")
            {
                "name": "opentelemetry-collector-configmap",
                "configMap": {"name": "otel-collector" + ("-statefulset" if v["mode"] == "statefulset" else "")},
            },
            *v["extraVolumes"],
            *[
                {"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}}
                for t, claim in zip(claim_templates(values), pod_claims(values, 0), strict=True)
            ],
        ],
    }


def collector_workload(values: dict[str, Any]) -> dict[str, Any]:
    """The workload the chart makes for ``mode`` (no vendored copy of these two templates: the
    models below cite the lines they follow, read at tag opentelemetry-collector-0.170.0).

    templates/deployment.yaml (``mode: deployment``): ``replicas: {{ .Values.replicaCount }}``,
    ``strategy.type: {{ .Values.rollout.strategy }}``. templates/statefulset.yaml (``mode:
    statefulset``): ``serviceName`` the fullname, ``podManagementPolicy:
    {{ .Values.statefulset.podManagementPolicy }}``, ``replicas``, ``updateStrategy.type:
    {{ .Values.rollout.strategy }}`` (``rollingUpdate`` only when ``rollout.rollingUpdate`` is set),
    ``persistentVolumeClaimRetentionPolicy`` only when its ``enabled`` is true, and
    ``volumeClaimTemplates`` from ``statefulset.volumeClaimTemplates``. templates/pdb.yaml: a
    PodDisruptionBudget when ``podDisruptionBudget.enabled`` and the mode is deployment or
    statefulset, with the chart's selector labels."""
    v = collector_values(values)
    mode = v["mode"]
    assert mode in ("deployment", "statefulset"), mode
    spec: dict[str, Any] = {"replicas": v["replicaCount"]}
    if mode == "deployment":
        spec["strategy"] = {"type": v["rollout"]["strategy"]}
    else:
        spec["serviceName"] = "otel-collector"
        spec["podManagementPolicy"] = v["statefulset"]["podManagementPolicy"]
        spec["updateStrategy"] = {"type": v["rollout"]["strategy"]}
        if v["rollout"].get("rollingUpdate") and v["rollout"]["strategy"] == "RollingUpdate":
            spec["updateStrategy"]["rollingUpdate"] = v["rollout"]["rollingUpdate"]
        retention = v["statefulset"].get("persistentVolumeClaimRetentionPolicy", {})
        if retention.get("enabled"):
            spec["persistentVolumeClaimRetentionPolicy"] = {
                "whenDeleted": retention["whenDeleted"],
                "whenScaled": retention["whenScaled"],
            }
        spec["volumeClaimTemplates"] = claim_templates(values)
    spec["template"] = {"spec": collector_pod(values)}
    pdb = v["podDisruptionBudget"]
    disruption = None
    if pdb.get("enabled"):
        disruption = {k: pdb[k] for k in ("minAvailable", "maxUnavailable") if pdb.get(k)}
    return {"kind": "Deployment" if mode == "deployment" else "StatefulSet", "spec": spec, "pdb": disruption}


def claim_templates(values: dict[str, Any]) -> list[dict[str, Any]]:
    v = collector_values(values)
    if v["mode"] != "statefulset":
        return []
    templates: list[dict[str, Any]] = v["statefulset"]["volumeClaimTemplates"]
    return templates


def pod_claims(values: dict[str, Any], ordinal: int) -> list[str]:
    """The claims the StatefulSet controller makes for pod ``ordinal``: ``<template>-<set>-<ordinal>``
    (Kubernetes, pkg/controller/statefulset/stateful_set_utils.go ``getPersistentVolumeClaimName``)."""
    return [f"{t['metadata']['name']}-otel-collector-{ordinal}" for t in claim_templates(values)]


# -- loki 6.29.0 -----------------------------------------------------------------------------------


def loki_values(values: dict[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = load(LOKI_CHART / "values.yaml")
    return helm_merge(defaults, values)


def loki_image(service: dict[str, Any], default_tag: str) -> str:
    """_helpers.tpl ``loki.baseImage``: ``registry/repository`` then ``@digest`` when set, else
    ``:tag`` (the chart's appVersion when empty)."""
    ref = f"@{service['digest']}" if service.get("digest") else f":{service.get('tag') or default_tag}"
    return f"{service['registry']}/{service['repository']}{ref}"


def loki_sidecar_image(sidecar: dict[str, Any]) -> str:
    """single-binary/statefulset.yaml: ``repository:tag@sha256:sha`` when ``sidecar.image.sha`` is set."""
    image = sidecar["image"]
    return f"{image['repository']}:{image['tag']}" + (f"@sha256:{image['sha']}" if image.get("sha") else "")


def loki_single_binary_pod(values: dict[str, Any]) -> dict[str, Any]:
    """templates/single-binary/statefulset.yaml: ``automountServiceAccountToken`` from
    ``serviceAccount``, ``loki.podSecurityContext`` for the pod, the rules sidecar (first, with
    ``sidecar.securityContext``) then ``loki`` with ``loki.containerSecurityContext`` and
    ``singleBinary.extraVolumeMounts``, then ``singleBinary.extraContainers``; volumes tmp, config,
    runtime-config, the rules emptyDir, ``singleBinary.extraVolumes``; the data PVC from
    ``volumeClaimTemplates``."""
    v = loki_values(values)
    app_version = load(LOKI_CHART / "Chart.yaml")["appVersion"]
    rules = v["sidecar"]["rules"]
    sidecar = []
    if rules["enabled"]:
        env = {
            "METHOD": rules["watchMethod"],
            "LABEL": rules["label"],
            "FOLDER": rules["folder"],
            "RESOURCE": rules["resource"],
        }
        if rules.get("labelValue"):
            env["LABEL_VALUE"] = rules["labelValue"]
        if v["sidecar"]["enableUniqueFilenames"]:
            env["UNIQUE_FILENAMES"] = str(v["sidecar"]["enableUniqueFilenames"]).lower()
        if rules.get("searchNamespace"):
            namespaces = rules["searchNamespace"]
            env["NAMESPACE"] = ",".join(namespaces) if isinstance(namespaces, list) else str(namespaces)
        sidecar = [
            {
                "name": "loki-sc-rules",
                "image": loki_sidecar_image(v["sidecar"]),
                "env": [{"name": k, "value": val} for k, val in env.items()],
                "securityContext": v["sidecar"]["securityContext"] or {},
                "volumeMounts": [{"name": "sc-rules-volume", "mountPath": rules["folder"]}],
            }
        ]
    loki = {
        "name": "loki",
        "image": loki_image(v["loki"]["image"], app_version),
        "securityContext": v["loki"]["containerSecurityContext"],
        "ports": [
            {"name": "http-metrics", "containerPort": 3100},
            {"name": "grpc", "containerPort": 9095},
            {"name": "http-memberlist", "containerPort": 7946},
        ],
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "config", "mountPath": "/etc/loki/config"},
            {"name": "runtime-config", "mountPath": "/etc/loki/runtime-config"},
            {"name": "storage", "mountPath": "/var/loki"},
            *([{"name": "sc-rules-volume", "mountPath": rules["folder"]}] if rules["enabled"] else []),
            *(v["singleBinary"].get("extraVolumeMounts") or []),
        ],
    }
    return {
        "automountServiceAccountToken": v["serviceAccount"]["automountServiceAccountToken"],
        "securityContext": v["loki"]["podSecurityContext"],
        "initContainers": v["singleBinary"].get("initContainers") or [],
        "containers": [*sidecar, loki, *(v["singleBinary"].get("extraContainers") or [])],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "loki"}},
            {"name": "runtime-config", "configMap": {"name": "loki-runtime"}},
            *([{"name": "sc-rules-volume", "emptyDir": {}}] if rules["enabled"] else []),
            *(v["singleBinary"].get("extraVolumes") or []),
            {"name": "storage", "persistentVolumeClaim": {"claimName": "storage-loki-0"}},
        ],
    }


def loki_gateway_pod(values: dict[str, Any]) -> dict[str, Any]:
    """templates/gateway/deployment-gateway-nginx.yaml: no ``automountServiceAccountToken`` in the
    pod spec (so the ServiceAccount's, templates/serviceaccount.yaml, decides), the shared
    ServiceAccount, ``gateway.podSecurityContext``, one ``nginx`` container with
    ``gateway.containerSecurityContext`` and ``gateway.extraVolumeMounts``, then
    ``gateway.extraContainers``; volumes config, auth (basic auth), tmp, docker-entrypoint-d-override,
    ``gateway.extraVolumes``."""
    v = loki_values(values)
    g = v["gateway"]
    auth = g["basicAuth"]["enabled"]
    nginx = {
        "name": "nginx",
        "image": loki_image(g["image"], "latest"),
        "securityContext": g["containerSecurityContext"],
        "ports": [{"name": "http-metrics", "containerPort": g["containerPort"]}],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/nginx"},
            *([{"name": "auth", "mountPath": "/etc/nginx/secrets"}] if auth else []),
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "docker-entrypoint-d-override", "mountPath": "/docker-entrypoint.d"},
            *(g.get("extraVolumeMounts") or []),
        ],
    }
    return {
        "automountServiceAccountToken": v["serviceAccount"]["automountServiceAccountToken"],
        "securityContext": g["podSecurityContext"],
        "containers": [nginx, *(g.get("extraContainers") or [])],
        "volumes": [
            {"name": "config", "configMap": {"name": "loki-gateway"}},
            *([{"name": "auth", "secret": {"secretName": g["basicAuth"]["existingSecret"]}}] if auth else []),
            {"name": "tmp", "emptyDir": {}},
            {"name": "docker-entrypoint-d-override", "emptyDir": {}},
            *(g.get("extraVolumes") or []),
        ],
    }


def loki_rbac(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The RBAC objects: templates/backend/clusterrole.yaml (+ clusterrolebinding.yaml) unless
    ``rbac.namespaced``, granting get/watch/list on configmaps *and* secrets when the rules sidecar
    is on; templates/role.yaml (+ rolebinding.yaml) only with ``rbac.pspEnabled`` or
    ``rbac.sccEnabled``; then whatever ``extraObjects`` holds."""
    v = loki_values(values)
    objects: list[dict[str, Any]] = []
    sidecar_rules = [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "watch", "list"]}]
    if not v["rbac"]["namespaced"]:
        objects.append(
            {
                "kind": "ClusterRole",
                "metadata": {"name": "loki-clusterrole"},
                "rules": sidecar_rules if v["sidecar"]["rules"]["enabled"] else [],
            }
        )
        objects.append(
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "loki-clusterrolebinding"},
                "roleRef": {"kind": "ClusterRole", "name": "loki-clusterrole"},
                "subjects": [{"kind": "ServiceAccount", "name": "loki", "namespace": "loki"}],
            }
        )
    if v["rbac"]["pspEnabled"] or v["rbac"]["sccEnabled"]:
        objects.append({"kind": "Role", "metadata": {"name": "loki"}, "rules": []})
    return objects + [o for o in v["extraObjects"] if isinstance(o, dict)]


def admit_service_account(pod: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes' ServiceAccount admission plugin (plugin/pkg/admission/serviceaccount): with
    automount on, every container gets the token at TOKEN_PATH unless it already mounts that path."""
    pod = copy.deepcopy(pod)
    if pod["automountServiceAccountToken"]:
        pod["volumes"] = [*pod["volumes"], {"name": "kube-api-access", "projected": {}}]
        for container in pod["containers"]:
            mounts = container.setdefault("volumeMounts", [])
            if not any(m["mountPath"] == TOKEN_PATH for m in mounts):
                mounts.append({"name": "kube-api-access", "mountPath": TOKEN_PATH, "readOnly": True})
    return pod


def holds_token(pod: dict[str, Any], container: str) -> bool:
    """Whether ``container`` of the admitted pod sees a real API token."""
    pod = admit_service_account(pod)
    volumes = {v["name"]: v for v in pod["volumes"]}
    [c] = [c for c in pod["containers"] if c["name"] == container]
    mounted = [volumes[m["name"]] for m in c.get("volumeMounts", []) if m["mountPath"] == TOKEN_PATH]
    return any("projected" in v for v in mounted)
