# otelkv: slim, non-root, read-only root filesystem, no build tools in the final image (every
# dependency comes as a wheel, pinned with hashes in requirements.lock; otelkv's own compiled core
# is built in the build stage, whose compiler stays there).
#
# The base image is pinned by digest (python:3.11-slim, multi-arch index). To refresh it:
#   docker buildx imagetools inspect python:3.11-slim    (the "Digest:" line)
# or `crane digest python:3.11-slim`, then replace the digest below (both stages use it).
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS build
# A C compiler for otelkv's compiled core, otelkv/otlp/_wire.c (the image has Python.h; gcc alone
# does not bring the C library's headers).
RUN apt-get update \
 && apt-get install --yes --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.lock ./
# Wheels only (--only-binary): no dependency is compiled.
RUN python -m venv /opt/otelkv \
 && /opt/otelkv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml setup.py README.md ./
COPY otelkv ./otelkv
# pip installs the pure-Python path where the core does not build; the image must have the core,
# so the build stops here if it is missing (the message says why).
RUN /opt/otelkv/bin/pip install --no-cache-dir --no-deps . \
 && /opt/otelkv/bin/python -c "from otelkv.otlp import native; assert native.core(), native.description()" \
 && /opt/otelkv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
# The base image's own pip and setuptools are not needed to run otelkv: out they go.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin otelkv \
 && mkdir -p /var/lib/otelkv \
 && chown 10001:10001 /var/lib/otelkv \
 && python -m pip uninstall --yes --no-cache-dir pip setuptools wheel
COPY --from=build /opt/otelkv /opt/otelkv
# No .pyc written at run time (the root filesystem is read-only); temporary files (SQLite's
# included) go to /tmp, which like the queue store must be a volume (emptyDir in Kubernetes).
ENV PATH=/opt/otelkv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/tmp
# delivery.store_path (queue mode, dead letters) belongs under /var/lib/otelkv.
VOLUME ["/var/lib/otelkv", "/tmp"]
WORKDIR /var/lib/otelkv
USER 10001:10001
# OTLP/gRPC, and OTLP/HTTP + /healthz + /readyz + /metrics (otelkv's ports; with
# --admin-listen the health and metrics move to that port: override the HEALTHCHECK then).
EXPOSE 4319 4320
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:4320/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["otelkv"]
# otelkv listens on 127.0.0.1 unless told otherwise; in a container that is unreachable, so the
# image's command says 0.0.0.0 (`docker run -p 4319:4319` works; docs/security.md: add TLS/a token).
CMD ["serve", "--grpc-listen=0.0.0.0:4319", "--http-listen=0.0.0.0:4320"]
