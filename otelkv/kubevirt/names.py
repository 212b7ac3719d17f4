"""Kubernetes naming rules that let a name be read back from another name."""

from __future__ import annotations

import re
from typing import Final

# The API server makes a generateName as base[:58] + 5 characters from this alphabet
# (k8s.io/apiserver/pkg/storage/names, k8s.io/apimachinery/pkg/util/rand).
_RANDOM_SUFFIX: Final = "[bcdfghjklmnpqrstvwxz2456789]{5}"
_MAX_NAME: Final = 63
_LAUNCHER: Final = re.compile(f"virt-launcher-(?P<vm>.+)-{_RANDOM_SUFFIX}")


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
