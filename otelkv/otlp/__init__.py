"""Pure functions over OTLP log protobufs: read and write attributes, enrich a request."""
