# otelkv: slim, non-root, no build tools in the final image (grpcio and protobuf come as wheels).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY otelkv ./otelkv
RUN python -m venv /opt/otelkv \
 && /opt/otelkv/bin/pip install --no-cache-dir . \
 && /opt/otelkv/bin/pip uninstall --yes pip setuptools

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin otelkv
COPY --from=build /opt/otelkv /opt/otelkv
ENV PATH=/opt/otelkv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
# OTLP/gRPC, and OTLP/HTTP + /healthz + /readyz + /metrics (otelkv's defaults).
EXPOSE 4319 4320
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:4320/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["otelkv"]
CMD ["serve"]
