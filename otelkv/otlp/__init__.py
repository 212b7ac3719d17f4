"""Pure functions over OTLP log protobufs: decode (:mod:`.decode`), read and write attributes
(:mod:`.attributes`), the collector's ``k8s_events`` and ``k8sobjects`` shapes, enrichment
(:mod:`.enrich`, with :mod:`.wire` driving the optional compiled core) and summaries.

The face imports nothing: each caller imports the module it uses.
"""

__all__: list[str] = []
