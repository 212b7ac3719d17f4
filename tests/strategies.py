"""Hypothesis strategies for the names and values Kubernetes and KubeVirt put in events."""

from __future__ import annotations

from hypothesis import strategies as st

#: A DNS-1123 label: namespaces, node name parts, most object names.
dns_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)

#: A DNS-1123 subdomain: VM names with dots, FQDN node names (at most 253 characters).
dns_subdomain = st.lists(dns_label, min_size=1, max_size=4).map(".".join).filter(lambda name: len(name) <= 253)

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
uid = st.uuids().map(str)
port = st.integers(min_value=1, max_value=65535)

#: The 5 characters the API server appends to a generateName (k8s.io/apimachinery util/rand).
random_suffix = st.text(alphabet="bcdfghjklmnpqrstvwxz2456789", min_size=5, max_size=5)


@st.composite
def launcher_pod(draw: st.DrawFn, vm: str) -> str:
    """The target pod of ``vm`` as the API server names it, cutting a base over 58 characters."""
    return f"virt-launcher-{vm}-"[:58] + draw(random_suffix)


#: Free text as errors and failure reasons carry it (any characters, may be empty).
free_text = st.text(max_size=80)
