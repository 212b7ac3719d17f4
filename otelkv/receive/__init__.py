"""Thin OTLP receivers: decode, call the pipeline, encode the answer (gRPC and HTTP)."""
