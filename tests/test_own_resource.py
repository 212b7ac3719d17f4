"""OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name otelkv's own telemetry, as in every SDK."""

from __future__ import annotations

import pytest

from otelkv import __version__
from tests.test_telemetry import export_over_otlp


def _exported_resource() -> dict[str, str]:
    received = export_over_otlp(lambda telemetry: telemetry.received.add(1))
    attributes = received[0].resource_metrics[0].resource.attributes
    return {kv.key: kv.value.string_value for kv in attributes}


def test_the_standard_variables_win_over_otelkvs_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otelkv-sidecar")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=collector-0,service.namespace=observability")
    resource = _exported_resource()
    assert resource["service.name"] == "otelkv-sidecar"
    assert resource["k8s.pod.name"] == "collector-0" and resource["service.namespace"] == "observability"
    assert resource["service.version"] == __version__


def test_without_them_the_service_is_otelkv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    assert _exported_resource()["service.name"] == "from-attributes"
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES")
    assert _exported_resource()["service.name"] == "otelkv"
