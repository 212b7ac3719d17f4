"""otelkv: KubeVirt live-migration facts from Kubernetes Events, on their way to Grafana Loki."""

__version__ = "0.1.0"
