"""The OTLP push path: the official OpenTelemetry OTLP exporters behind a periodic reader.

Configured the way every OpenTelemetry SDK is: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
``_METRICS_`` variant), ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc`` or ``http/protobuf``, the
specification's default), ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_EXPORTER_OTLP_CERTIFICATE``,
``OTEL_EXPORTER_OTLP_COMPRESSION``, ``OTEL_EXPORTER_OTLP_TIMEOUT``,
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` (cumulative by default) — all read by the
exporters themselves — and ``OTEL_METRIC_EXPORT_INTERVAL`` / ``OTEL_METRIC_EXPORT_TIMEOUT``, read
by the periodic reader.  ``OTEL_METRICS_EXPORTER`` picks the ways out (``selected_exporters``).

The push reader shares the MeterProvider and the callbacks with the Prometheus page.  The SDK
runs one collection at a time, so a push export waits at most for one in-flight scrape, whose
callbacks are each bounded by their own timeouts (statfs watchdog, HDHomeRun deadline).
"""

from __future__ import annotations

import logging
from typing import Mapping

from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from otel_bare_metal.exposition.prometheus import CARDINALITY_LIMITS

log = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http/protobuf")
EXPORTERS = ("prometheus", "otlp", "none")


class OTLPConfigError(ValueError):
    pass


def selected_exporters(environ: Mapping[str, str], endpoint_flag: str = "") -> set[str]:
    """The ways out: ``OTEL_METRICS_EXPORTER`` when set (comma-separated: prometheus, otlp,
    none); otherwise the /metrics page, plus OTLP when an endpoint is configured."""
    raw = environ.get("OTEL_METRICS_EXPORTER", "").strip()
    if raw:
        chosen = {item.strip().lower() for item in raw.split(",") if item.strip()}
        unknown = chosen - set(EXPORTERS)
        if unknown:
            raise OTLPConfigError(f"OTEL_METRICS_EXPORTER: unknown exporter(s) {', '.join(sorted(unknown))}; want prometheus, otlp or none")
        return chosen - {"none"}
    chosen = {"prometheus"}
    if endpoint_flag or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        chosen.add("otlp")
    return chosen


def protocol(environ: Mapping[str, str], flag: str = "") -> str:
    value = (flag or environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    if value not in PROTOCOLS:
        raise OTLPConfigError(f"OTLP protocol {value!r}: want grpc or http/protobuf")
    return value


def build_exporter(proto: str, endpoint: str = ""):
    """The official exporter for ``proto``; with no explicit endpoint it reads the environment."""
    kwargs = {}
    if proto == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        if endpoint:
            kwargs["endpoint"] = endpoint
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        if endpoint:  # an explicit endpoint is used as given: add the signal path like the env variable does
            kwargs["endpoint"] = endpoint if endpoint.rstrip("/").endswith("/v1/metrics") else endpoint.rstrip("/") + "/v1/metrics"
    return OTLPMetricExporter(**kwargs)


def otlp_reader(environ: Mapping[str, str], endpoint: str = "", protocol_flag: str = "") -> PeriodicExportingMetricReader:
    proto = protocol(environ, protocol_flag)
    exporter = build_exporter(proto, endpoint)
    reader = PeriodicExportingMetricReader(exporter, cardinality_limits=CARDINALITY_LIMITS)
    log.info("pushing OTLP over %s every %.0f s", proto, reader._export_interval_millis / 1000)
    return reader
