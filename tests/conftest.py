"""Shared test set-up: Hypothesis profiles and the KubeVirt event catalogue."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings

# "ci": deterministic and quick (make test); "long": many more examples (make test-long).
settings.register_profile("ci", derandomize=True, max_examples=150, deadline=None, print_blob=True)
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DATA = Path(__file__).parent / "data"
CATALOGUE = DATA / "kubevirt-events.yaml"


def load_catalogue() -> dict[str, Any]:
    """KubeVirt's event catalogue (``../shared/kubevirt/events.yaml``, vendored)."""
    with CATALOGUE.open() as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


@pytest.fixture(scope="session")
def catalogue() -> dict[str, Any]:
    return load_catalogue()
