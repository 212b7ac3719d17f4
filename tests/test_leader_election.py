"""Two collector replicas, one active (issue 23 §1-2): a test per upstream fact the manifests rely on.

The facts were read in the upstream sources at the pinned versions (chart
opentelemetry-collector-0.170.0, appVersion 0.158.0; otelcol-contrib 0.158.0). The chart files the
tests need are vendored in tests/data/charts (SOURCE.md); what is not vendored is cited in
``UPSTREAM`` below, each with where it was read.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT
from tests.deploy_charts import (
    COLLECTOR_CHART,
    collector_config,
    collector_pod,
    collector_values,
    collector_workload,
    load,
    pod_claims,
    template_says,
)
from tests.test_deploy import DEPLOY, K8S_VERSION

VALUES = ROOT / "collector-config" / "values-sidecar.yaml"
STANDALONE = ROOT / "collector-config" / "collector-standalone.yaml"
ELECTOR = "k8s_leader_elector"

# Read upstream; none of it is vendored (the contrib repository is too large to bring here whole,
# so its files were read one by one, and the distribution manifest at its release tag).
UPSTREAM = {
    # opentelemetry-collector-releases, tag v0.158.0 (commit 1400269f, 2026-08-04),
    # distributions/otelcol-contrib/manifest.yaml: the image otel/opentelemetry-collector-contrib
    # 0.158.0 is built with these modules at v0.158.0.
    "contrib_modules": {
        "extension/k8sleaderelector",
        "receiver/k8seventsreceiver",
        "receiver/k8sobjectsreceiver",
        "processor/resourceprocessor",
        "extension/storage/filestorage",
    },
    # contrib receiver/k8seventsreceiver/config.go: `K8sLeaderElector *component.ID
    # mapstructure:"k8s_leader_elector"` (PR #42330, merged 2025-09, before v0.158.0);
    # receiver/k8sobjectsreceiver/config.go: the same field (PR #39054, 2025-05) and
    # `IncludeInitialState bool mapstructure:"include_initial_state"` on the receiver, not per
    # object (PR #41564, 2025-07); Validate(): "include_initial_state can only be used with watch mode".
    "receivers_with_elector": {"k8s_events", "k8sobjects"},
    # extension/k8sleaderelector/README.md: auth_type, lease_name, lease_namespace required;
    # lease_duration 15s, renew_deadline 10s ("must be less than the lease duration"), retry_period 2s.
    "elector_required": {"auth_type", "lease_name", "lease_namespace"},
    # extension/k8sleaderelector/extension.go: SetCallBackFuncs appends to a list of callbacks, so
    # one extension starts and stops several receivers together (one lease for both).
    # leader_elector.go: resourcelock.LeasesResourceLock, no ReleaseOnCancel: a stopped leader's
    # lease is taken over only when it expires (lease_duration). client-go's LeaseLock gets,
    # creates and updates the Lease (k8s.io/client-go/tools/leaderelection/resourcelock/leaselock.go).
    "lease_verbs": {"get", "create", "update"},
    # k8seventsreceiver/receiver.go: on leadership the watch starts (IncludeInitialState false) and
    # events older than the receiver's creation are dropped; on losing it the watch stops.
    # Chart 0.170.0 values.schema.json: "additionalProperties": false at the top; mode one of
    # daemonset, deployment, statefulset; rollout.strategy one of OnDelete, Recreate, RollingUpdate.
    "chart_modes": {"daemonset", "deployment", "statefulset"},
    # Kubernetes apps/v1 StatefulSetUpdateStrategyType: RollingUpdate or OnDelete (no Recreate).
    "statefulset_strategies": {"RollingUpdate", "OnDelete"},
}


def forms() -> dict[str, dict[str, Any]]:
    return {"sidecar": collector_config(load(VALUES)), "standalone": load(STANDALONE)}


@pytest.mark.parametrize("form", ["sidecar", "standalone"])
def test_both_receivers_follow_one_lease(form: str) -> None:
    """One elector for both receivers: the events and the migration objects are watched by the
    same pod, so one otelkv sidecar's tracker joins all of a migration (two leases could be held by
    two pods and split every migration between two trackers)."""
    cfg = forms()[form]
    # the receivers that watch the API; the sidecar's otlp/otelkv takes otelkv's own metrics from
    # its pod, on every pod (the standby's otelkv is watched too): no lease for it
    watching = {name: r for name, r in cfg["receivers"].items() if name != "otlp/otelkv"}
    electors = {name: r.get(ELECTOR) for name, r in watching.items()}
    assert set(electors) == UPSTREAM["receivers_with_elector"]
    assert set(electors.values()) == {ELECTOR}
    assert ELECTOR not in (cfg["receivers"].get("otlp/otelkv") or {})
    assert ELECTOR in cfg["extensions"] and ELECTOR in cfg["service"]["extensions"]
    elector = cfg["extensions"][ELECTOR]
    assert UPSTREAM["elector_required"] <= set(elector)
    assert elector["auth_type"] == "serviceAccount"
    seconds = {k: int(elector[k].rstrip("s")) for k in ("lease_duration", "renew_deadline", "retry_period")}
    assert seconds["retry_period"] < seconds["renew_deadline"] < seconds["lease_duration"]


def test_the_events_preset_brings_no_elector_of_its_own() -> None:
    """Chart 0.170.0 _config.tpl: the kubernetesEvents preset writes ``k8s_events: {}`` (no
    leader election; the chart sets one up only for clusterMetrics and, as a daemonset, for
    kubernetesObjects), merged *under* our config: our ``k8s_leader_elector`` stays."""
    assert template_says(
        COLLECTOR_CHART, "templates/_config.tpl", "k8s_events: {}", '{{- $electorName := "k8s_objects" }}'
    )
    assert collector_config(load(VALUES))["receivers"]["k8s_events"] == {ELECTOR: ELECTOR}
    assert (
        collector_config({"presets": {"kubernetesEvents": {"enabled": True, "useK8sEventsReceiver": True}}})[
            "receivers"
        ]["k8s_events"]
        == {}
    )  # what the preset alone gives


def test_only_our_role_grants_the_lease() -> None:
    """Chart 0.170.0 templates/clusterrole.yaml grants leases only for clusterMetrics (daemonset or
    several replicas) or kubernetesObjects (daemonset): neither is on, so without our Role the
    elector gets 403 and no pod ever leads. The Role is namespaced (no ClusterRole rule: that
    would let the collector write every lease of the cluster), bound to the chart's
    ServiceAccount (templates/_helpers.tpl: the fullname when ``serviceAccount.create`` and no
    name), with create (which cannot be limited by name) and get/update on our lease only."""
    assert template_says(
        COLLECTOR_CHART,
        "templates/clusterrole.yaml",
        "{{- if or $useLeaderElectionForClusterMetrics $useLeaderElectionForKubernetesObjects }}",
        '- apiGroups: ["coordination.k8s.io"]',
    )
    assert template_says(
        COLLECTOR_CHART,
        "templates/_helpers.tpl",
        '{{- default (include "opentelemetry-collector.fullname" .) .Values.serviceAccount.name }}',
    )
    values = load(VALUES)
    v = collector_values(values)
    assert not v["presets"]["clusterMetrics"]["enabled"] and not v["presets"]["kubernetesObjects"]["enabled"]
    assert not [r for r in values["clusterRole"]["rules"] if "coordination.k8s.io" in r["apiGroups"]]
    lease = collector_config(values)["extensions"][ELECTOR]
    [role] = [o for o in values["extraManifests"] if o["kind"] == "Role"]
    [binding] = [o for o in values["extraManifests"] if o["kind"] == "RoleBinding"]
    granted: dict[str, set[str]] = {}
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"]
        for verb in rule["verbs"]:
            granted.setdefault(verb, set()).update(rule.get("resourceNames", ["*"]))
    assert set(granted) == UPSTREAM["lease_verbs"]
    assert granted["get"] == granted["update"] == {lease["lease_name"]} and granted["create"] == {"*"}
    app = load(DEPLOY / "apps/otel-collector/application.yaml")
    namespace = app["spec"]["destination"]["namespace"]
    assert lease["lease_namespace"] == namespace  # the Role lives there (extraManifests, the release's namespace)
    account = v["serviceAccount"]["name"] or values["fullnameOverride"]
    assert v["serviceAccount"]["create"] is True
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    for obj in (role, binding):
        kubernetes_validate.validate(
            {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}, K8S_VERSION, strict=True
        )
    assert load(STANDALONE)["extensions"][ELECTOR]["lease_name"] == lease["lease_name"]


def test_two_replicas_as_a_statefulset_that_kubernetes_accepts() -> None:
    """Each pod has its own otelkv sidecar and store: a StatefulSet gives each its own claims
    (``volumeClaimTemplates``) that survive the pod. Its update strategy may only be RollingUpdate
    or OnDelete; RollingUpdate replaces one pod at a time. The rendered StatefulSet validates
    against Kubernetes' schema."""
    values = load(VALUES)
    assert values["mode"] in UPSTREAM["chart_modes"]
    workload = collector_workload(values)
    spec = workload["spec"]
    assert workload["kind"] == "StatefulSet" and spec["replicas"] == 2
    assert spec["updateStrategy"]["type"] in UPSTREAM["statefulset_strategies"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}
    assert pod_claims(values, 0) == ["collector-queue-otel-collector-0", "otelkv-store-otel-collector-0"]
    assert set(pod_claims(values, 0)).isdisjoint(pod_claims(values, 1))
    mounted = {m["name"] for c in collector_pod(values)["containers"] for m in c.get("volumeMounts", [])}
    assert {t["metadata"]["name"] for t in spec["volumeClaimTemplates"]} <= mounted
    assert not [o for o in values["extraManifests"] if o["kind"] == "PersistentVolumeClaim"]  # no shared claim
    labels = {"app.kubernetes.io/name": "opentelemetry-collector", "app.kubernetes.io/instance": "otel-collector"}
    pod = collector_pod(values)
    pod["volumes"] = [v for v in pod["volumes"] if "persistentVolumeClaim" not in v]  # the templates provide them
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "otel-collector", "namespace": "observability"},
        "spec": {
            **{k: v for k, v in spec.items() if k != "template"},
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    kubernetes_validate.validate(statefulset, K8S_VERSION, strict=True)
    # (The schema types updateStrategy.type as a plain string; the API server's validation refuses
    # Recreate, which is why UPSTREAM names the two types and the assertion above checks them.)


def test_a_drain_takes_one_pod_at_a_time_and_the_pods_prefer_two_nodes() -> None:
    values = load(VALUES)
    workload = collector_workload(values)
    assert workload["pdb"] == {"maxUnavailable": 1} and workload["spec"]["replicas"] > 1
    [term] = values["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert selector == {
        "app.kubernetes.io/name": "opentelemetry-collector",
        "app.kubernetes.io/instance": "otel-collector",
    }


def test_every_top_level_value_is_one_the_chart_knows() -> None:
    """The chart's values.schema.json refuses unknown top-level keys (``additionalProperties:
    false``): a value of our own (say ``clusterName``) would fail the whole sync. So the cluster's
    name travels in ``extraEnvs``, a key the chart has."""
    chart = load(COLLECTOR_CHART / "values.yaml")
    assert set(load(VALUES)) <= set(chart)
    assert "clusterName" not in chart  # the key one might reach for
    assert "extraEnvs" in chart and "statefulset" in chart and "podDisruptionBudget" in chart


@pytest.mark.parametrize("form", ["sidecar", "standalone"])
def test_the_migration_objects_start_from_the_current_state(form: str) -> None:
    """include_initial_state (receiver-wide, watch mode only): at every start and every takeover
    one ADDED record per existing migration object, finished ones included, so a migration that
    ended while no collector watched still reaches otelkv (which summarises it once)."""
    receiver = forms()[form]["receivers"]["k8sobjects"]
    assert receiver["include_initial_state"] is True
    assert {o["mode"] for o in receiver["objects"]} == {"watch"}  # pull + include_initial_state is refused


def test_the_docs_say_what_is_built() -> None:
    scaling = (ROOT / "docs/scaling.md").read_text()
    deployment = (ROOT / "docs/deployment.md").read_text()
    assert "on paper" not in scaling
    assert "docs/reliability.md" in scaling and "| failure |" in scaling
    assert "## Many clusters into one Loki" in scaling
    for text in (scaling, deployment):
        assert "waits for the lease" in text and "RollingUpdate" in text and "StatefulSet" in text
    assert "coordination.k8s.io" in deployment
    documented = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", deployment, re.S)]
    wanted = collector_config(load(VALUES))["receivers"]["k8s_events"]
    assert any(
        isinstance(d, dict) and d.get("config", {}).get("receivers", {}).get("k8s_events") == wanted for d in documented
    )
