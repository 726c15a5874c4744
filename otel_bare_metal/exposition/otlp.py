"""The push paths: the official OpenTelemetry OTLP exporters (and the SDK's console exporter)
behind periodic readers.

``OTEL_METRICS_EXPORTER`` chooses the exporters (``exposition/otelenv.py``); this module only
builds the push ones.  OTLP is configured the way every OpenTelemetry SDK is:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the ``_METRICS_`` variant), ``OTEL_EXPORTER_OTLP_PROTOCOL``
(``grpc`` or ``http/protobuf``, the specification's default), ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_EXPORTER_OTLP_CERTIFICATE``, ``OTEL_EXPORTER_OTLP_COMPRESSION``,
``OTEL_EXPORTER_OTLP_TIMEOUT``, ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` (cumulative
by default) — all read by the exporters themselves — and ``OTEL_METRIC_EXPORT_INTERVAL`` /
``OTEL_METRIC_EXPORT_TIMEOUT``, read by the periodic reader.  The endpoint is resolved here
(``otlp_endpoint``, the specification's rules) and handed to the exporter, so the start-up log
line names exactly where data goes.

The push readers share the MeterProvider and the callbacks with the Prometheus page.  The SDK
runs one collection at a time, so a push export waits at most for one in-flight scrape, whose
callbacks are each bounded by their own timeouts (statfs watchdog, HDHomeRun deadline).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

from otel_bare_metal._otel_compat import export_interval_millis
from otel_bare_metal.exposition.prometheus import CARDINALITY_LIMITS
from otel_bare_metal.logutil import Message

log = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http/protobuf")
# The specification's defaults (protocol/exporter.md): gRPC on 4317, HTTP on 4318 + /v1/metrics.
DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}


class OTLPConfigError(ValueError):
    pass


@dataclass
class Push:
    """One push exporter: its name in OTEL_METRICS_EXPORTER, its reader and where it sends."""

    name: str
    reader: PeriodicExportingMetricReader
    destination: str


def _env_protocol(environ: Mapping[str, str]) -> tuple[str, list[Message]]:
    """The protocol the environment names, by the specification's Enum rule: an unknown value is
    a warning and is ignored (the next variable, else the default, applies)."""
    warnings: list[Message] = []
    for name in ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = (environ.get(name) or "").strip()
        if not value:
            continue
        if value in PROTOCOLS:
            return value, warnings
        warnings.append(Message("not grpc or http/protobuf; ignoring it", variable=name, value=value))
    return "http/protobuf", warnings


def protocol(environ: Mapping[str, str], flag: str = "") -> str:
    """``--otlp.protocol`` (a bad value is an error), else the environment (a bad value is ignored)."""
    if flag:
        if flag.strip() not in PROTOCOLS:
            raise OTLPConfigError(f"--otlp.protocol {flag!r}: want grpc or http/protobuf")
        return flag.strip()
    return _env_protocol(environ)[0]


def protocol_warnings(environ: Mapping[str, str]) -> list[Message]:
    return _env_protocol(environ)[1]


def _with_metrics_path(url: str) -> str:
    return url if url.rstrip("/").endswith("/v1/metrics") else url.rstrip("/") + "/v1/metrics"


def otlp_endpoint(environ: Mapping[str, str], proto: str, flag: str = "") -> str:
    """Where OTLP metrics go: ``--otlp.endpoint``, else ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``
    (used as given), else ``OTEL_EXPORTER_OTLP_ENDPOINT`` (+ ``/v1/metrics`` over HTTP), else the
    specification's default for the protocol."""
    if flag:
        return _with_metrics_path(flag) if proto == "http/protobuf" else flag
    signal = (environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or "").strip()
    if signal:
        return signal
    base = (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip() or DEFAULT_ENDPOINTS[proto]
    return _with_metrics_path(base) if proto == "http/protobuf" else base


def redact(url: str) -> str:
    """The URL without user:password, for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def build_exporter(proto: str, endpoint: str):
    """The official exporter for ``proto``, sending to ``endpoint``; every other setting
    (headers, certificate, compression, timeout, temporality) it reads from the environment."""
    if proto == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GRPCExporter

        return GRPCExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HTTPExporter

    return HTTPExporter(endpoint=endpoint)


def _every(reader: PeriodicExportingMetricReader) -> str:
    return f"{export_interval_millis(reader) / 1000:g}s"


def otlp_push(proto: str = "http/protobuf", endpoint: str = "") -> Push:
    """OTLP to ``endpoint`` (resolved by ``config.load``; "" is the specification's default)."""
    endpoint = endpoint or otlp_endpoint({}, proto)
    reader = PeriodicExportingMetricReader(build_exporter(proto, endpoint), cardinality_limits=CARDINALITY_LIMITS)
    return Push("otlp", reader, f"{proto} {redact(endpoint)} every {_every(reader)}")


def console_push(stream=None) -> Push:
    """The SDK's console exporter: each export as one JSON document on one line of standard
    output (JSON Lines; the SDK's default indents it over many lines)."""
    exporter = ConsoleMetricExporter(out=stream if stream is not None else sys.stdout,
                                     formatter=lambda data: data.to_json(indent=None) + "\n")
    reader = PeriodicExportingMetricReader(exporter, cardinality_limits=CARDINALITY_LIMITS)
    return Push("console", reader, f"stdout every {_every(reader)}")


def push_exporters(exporters, proto: str = "http/protobuf", endpoint: str = "") -> list[Push]:
    pushes = []
    if "otlp" in exporters:
        pushes.append(otlp_push(proto, endpoint))
    if "console" in exporters:
        pushes.append(console_push())
    return pushes
