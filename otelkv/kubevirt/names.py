"""Kubernetes naming rules: how long a name can be, and how a name is read back from another name."""

from __future__ import annotations

import re
from typing import Final

# The API server makes a generateName as base[:58] + 5 characters from this alphabet
# (k8s.io/apiserver/pkg/storage/names, k8s.io/apimachinery/pkg/util/rand).
_RANDOM_SUFFIX: Final = "[bcdfghjklmnpqrstvwxz2456789]{5}"
_MAX_NAME: Final = 63
_LAUNCHER: Final = re.compile(f"virt-launcher-(?P<vm>.+)-{_RANDOM_SUFFIX}")


#: The longest Kubernetes object or node name (a DNS subdomain, RFC 1123): a longer "name" is not
#: one, and is not kept as a fact (a hostile event could otherwise make the tracker hold megabytes).
MAX_NAME: Final = 253
#: The longest failure reason kept as a fact (the whole message stays in the record's body).
MAX_REASON: Final = 1024


def kubernetes_name(value: str | None) -> str | None:
    """``value`` when it can be a Kubernetes name by its length, else None."""
    return value if value is None or len(value) <= MAX_NAME else None


def bounded_reason(value: str | None) -> str | None:
    """``value``, cut to :data:`MAX_REASON` characters (the last one an ellipsis) when longer."""
    return value if value is None or len(value) <= MAX_REASON else value[: MAX_REASON - 1] + "…"


def vm_from_launcher_pod(pod: str) -> str | None:
    """The VMI name inside a ``virt-launcher-<vmi>-xxxxx`` pod name, when it is sure.

    KubeVirt names the pod with ``generateName: virt-launcher-<vmi>-``. A 63-character pod name
    may hold a base the API server cut to 58 characters, so the VMI name in it may be cut too:
    then the answer is None rather than a wrong name.
    """
    if len(pod) >= _MAX_NAME:
        return None
    found = _LAUNCHER.fullmatch(pod)
    return found.group("vm") if found else None
