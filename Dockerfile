# syntax=docker/dockerfile:1
# otel-bare-metal container image.
#
#   docker build -t ghcr.io/otel-bare-metal/otel-bare-metal:0.1.0 .
#
# The Helm chart (helm/otel-bare-metal) runs this image by default: repository
# ghcr.io/otel-bare-metal/otel-bare-metal, tag = the chart's appVersion (= the package version).
# It runs as the unprivileged user 65534 ("nobody"): /proc/stat, mountinfo and statfs need no root.
# The image holds what the wheel holds: the first stage builds the sdist and the wheel as a
# release does, the second installs that wheel alone, the last keeps only the installed virtualenv.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- the sdist and the wheel
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir build==1.6.1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY otel_bare_metal ./otel_bare_metal
RUN python -m build --outdir /dist .

# ---------------------------------------------------------------- the wheel installed, compilers at hand
FROM ${PYTHON_IMAGE} AS install
# Compilers only here, for platforms without binary wheels (e.g. linux/arm/v7 grpcio).
# Unpinned: the base image's Debian release decides the versions, and this stage is discarded.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/otel-bare-metal
COPY --from=wheel /dist/*.whl /tmp/dist/
RUN /opt/otel-bare-metal/bin/pip install --no-cache-dir --no-compile /tmp/dist/*.whl \
    && /opt/otel-bare-metal/bin/python -m compileall -q /opt/otel-bare-metal/lib

# ---------------------------------------------------------------- final stage: no compilers, no sources
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="otel-bare-metal" \
      org.opencontainers.image.description="CPU, filesystem and HDHomeRun metrics through OpenTelemetry to Prometheus and OTLP" \
      org.opencontainers.image.source="https://github.com/otel-bare-metal/otel-bare-metal" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=install /opt/otel-bare-metal /opt/otel-bare-metal
# Bytecode is precompiled above; a read-only root filesystem must not be written to.
ENV PATH="/opt/otel-bare-metal/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65534:65534
EXPOSE 9464
ENTRYPOINT ["otel-bare-metal"]
