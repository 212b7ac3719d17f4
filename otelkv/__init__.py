"""otelkv: KubeVirt live-migration facts from Kubernetes Events, on their way to Grafana Loki.

The library is :mod:`otelkv.kubevirt`; the rooms of the rest are mapped in docs/architecture.md.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
