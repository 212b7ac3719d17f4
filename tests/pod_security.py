"""Pod Security Standards, "baseline" and "restricted" (Kubernetes v1.33, the policy version
``latest``), checked on a pod spec the way the PodSecurity admission plugin does.

Written from the standard's page (kubernetes.io/docs/concepts/security/pod-security-standards/),
control by control, both levels: "restricted" includes every "baseline" control. Each finding
names its control as the page does. Every container counts: ``containers``, ``initContainers``
and ``ephemeralContainers``. Linux pods only (the standard exempts some controls for
``spec.os.name: windows``; none of ours is one).
"""

from __future__ import annotations

from typing import Any

BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in pod.get(key) or []]


def baseline_violations(pod: dict[str, Any], annotations: dict[str, str] | None = None) -> list[str]:
    """What Pod Security "baseline" refuses in this pod spec (and its pod template's annotations)."""
    bad: list[str] = []
    psc = pod.get("securityContext") or {}
    scs = [(c["name"], c.get("securityContext") or {}) for c in containers(pod)]
    everyone = [("pod", psc), *scs]
    # HostProcess
    for name, sc in everyone:
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            bad.append(f"{name}: HostProcess")
    # Host Namespaces
    bad += [f"pod: Host Namespaces ({k})" for k in ("hostNetwork", "hostPID", "hostIPC") if pod.get(k)]
    # Privileged Containers
    bad += [f"{n}: Privileged Containers" for n, sc in scs if sc.get("privileged")]
    # Capabilities (baseline)
    for name, sc in scs:
        if set((sc.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES:
            bad.append(f"{name}: Capabilities (baseline)")
    # HostPath Volumes
    bad += [f"volume {v['name']}: HostPath Volumes" for v in pod.get("volumes") or [] if "hostPath" in v]
    # Host Ports
    for c in containers(pod):
        if any(p.get("hostPort") for p in c.get("ports") or []):
            bad.append(f"{c['name']}: Host Ports")
    # AppArmor
    for name, sc in everyone:
        if (sc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
            bad.append(f"{name}: AppArmor")
    for key, value in (annotations or {}).items():
        if key.startswith(APPARMOR_ANNOTATION) and value != "runtime/default" and not value.startswith("localhost/"):
            bad.append(f"{key.removeprefix(APPARMOR_ANNOTATION)}: AppArmor")
    # SELinux
    for name, sc in everyone:
        options = sc.get("seLinuxOptions") or {}
        if options.get("type", "") not in SELINUX_TYPES or options.get("user") or options.get("role"):
            bad.append(f"{name}: SELinux")
    # /proc Mount Type
    bad += [f"{n}: /proc Mount Type" for n, sc in scs if sc.get("procMount", "Default") != "Default"]
    # Seccomp (baseline)
    for name, sc in everyone:
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            bad.append(f"{name}: Seccomp")
    # Sysctls
    bad += [f"pod: Sysctls ({s['name']})" for s in psc.get("sysctls") or [] if s["name"] not in SAFE_SYSCTLS]
    return bad


def restricted_violations(pod: dict[str, Any], annotations: dict[str, str] | None = None) -> list[str]:
    """What Pod Security "restricted" refuses: every baseline control, then restricted's own."""
    bad = baseline_violations(pod, annotations)
    psc = pod.get("securityContext") or {}
    # Volume Types
    for volume in pod.get("volumes") or []:
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES:
            bad.append(f"volume {volume['name']}: Volume Types")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in containers(pod):
        name, sc = c["name"], c.get("securityContext") or {}
        # Privilege Escalation
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: Privilege Escalation")
        # Running as Non-root: the container's or else the pod's, and true
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            bad.append(f"{name}: Running as Non-root")
        # Running as Non-root user
        if sc.get("runAsUser") == 0:
            bad.append(f"{name}: Running as Non-root user")
        # Seccomp (restricted): the container's or else the pod's, and RuntimeDefault or Localhost
        if (sc.get("seccompProfile") or {}).get("type", pod_seccomp) not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: Seccomp")
        # Capabilities (restricted)
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            bad.append(f"{name}: Capabilities (drop ALL)")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: Capabilities (add)")
    if psc.get("runAsUser") == 0:
        bad.append("pod: Running as Non-root user")
    return sorted(set(bad), key=bad.index)
