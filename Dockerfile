# syntax=docker/dockerfile:1
# otel-bare-metal container image.
#
#   docker build -t ghcr.io/otel-bare-metal/otel-bare-metal:0.1.0 .
#
# The Helm chart (helm/otel-bare-metal) runs this image by default: repository
# ghcr.io/otel-bare-metal/otel-bare-metal, tag = the chart's appVersion (= the package version).
# It runs as the unprivileged user 65534 ("nobody"): /proc/stat, mountinfo and statfs need no root.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
# Compilers only here, for platforms without binary wheels (e.g. linux/arm/v7 psutil, grpcio).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/otel-bare-metal
WORKDIR /src
COPY pyproject.toml README.md ./
COPY otel_bare_metal ./otel_bare_metal
RUN /opt/otel-bare-metal/bin/pip install --no-compile . \
    && /opt/otel-bare-metal/bin/python -m compileall -q /opt/otel-bare-metal/lib

# ---------------------------------------------------------------- final stage: no compilers
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="otel-bare-metal" \
      org.opencontainers.image.description="CPU, filesystem and HDHomeRun metrics through OpenTelemetry to Prometheus and OTLP" \
      org.opencontainers.image.source="https://github.com/otel-bare-metal/otel-bare-metal" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/otel-bare-metal /opt/otel-bare-metal
# Bytecode is precompiled above; a read-only root filesystem must not be written to.
ENV PATH="/opt/otel-bare-metal/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65534:65534
EXPOSE 9464
ENTRYPOINT ["otel-bare-metal"]
