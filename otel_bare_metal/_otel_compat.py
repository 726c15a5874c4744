"""Every private OpenTelemetry SDK / exporter API the package uses, in one place.

Private names may change in any release, so nothing else in the package (or in bench/) touches
them: it goes through this module.  ``tests/test_otel_compat.py`` checks each assumption below
against the installed packages and fails with a message naming what changed upstream;
``pyproject.toml`` pins the OpenTelemetry packages below the next minor release, so a new
release is adopted by raising the bound and running those tests.

What we rely on, and why:

1. ``opentelemetry.exporter.prometheus._mapping``: ``sanitize_full_name``, ``sanitize_attribute``
   and ``map_unit``, the reader's own translation of instrument names, attribute keys and units
   into Prometheus names.  The fast text encoder and the classic-name table must produce exactly
   the names the stock reader produces; copying the rules would drift silently.
2. ``MetricReader._receive_metrics(metrics_data, timeout_millis=..., **kwargs)``: the hook the
   SDK calls with each collection (documented as "intended to be overridden by subclass").  The
   Prometheus page renames instruments there and keeps the collection for the fast encoder.
3. ``PeriodicExportingMetricReader._export_interval_millis`` / ``_export_timeout_millis``: the
   interval and timeout the reader resolved from its arguments and ``OTEL_METRIC_EXPORT_*``,
   read for the start-up log line and to bound the final flush at shutdown.
4. (bench only) ``PrometheusMetricReader._collector._translate_to_prometheus(data, families)``:
   the stock translation step alone, so ``bench/scale.py`` can time it apart from encoding.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData, PeriodicExportingMetricReader


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def upstream_changed(what: str, package: str, consequence: str) -> str:
    """The message for a broken assumption: what changed, in which package, what it breaks."""
    return (f"{package} {_package_version(package)}: {what}. {consequence} "
            "Update otel_bare_metal/_otel_compat.py for the new release (and its bound in pyproject.toml).")


try:
    from opentelemetry.exporter.prometheus._mapping import (  # re-exported
        map_unit as map_unit, sanitize_attribute as sanitize_attribute, sanitize_full_name as sanitize_full_name)
except ImportError as e:  # pragma: no cover - only on an incompatible release
    raise ImportError(upstream_changed(
        f"private module opentelemetry.exporter.prometheus._mapping (map_unit, sanitize_attribute, "
        f"sanitize_full_name) cannot be imported ({e})", "opentelemetry-exporter-prometheus",
        "Prometheus names for the fast encoder and the classic table cannot be derived.")) from e


class HookedPrometheusReader(PrometheusMetricReader):
    """The stock Prometheus reader with a public hook on each collection.

    ``on_collect(metrics_data)`` returns the data to hand on to the reader's own
    prometheus_client collector, or ``None`` to keep it from there (the caller took it)."""

    def on_collect(self, metrics_data: MetricsData | None) -> MetricsData | None:
        return metrics_data

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs) -> None:
        passed_on = self.on_collect(metrics_data)
        if passed_on is not None:
            super()._receive_metrics(passed_on, timeout_millis, **kwargs)


def _reader_millis(reader: PeriodicExportingMetricReader, attribute: str, consequence: str) -> float:
    try:
        return float(getattr(reader, attribute))
    except AttributeError as e:
        raise AttributeError(upstream_changed(f"PeriodicExportingMetricReader has no {attribute}",
                                              "opentelemetry-sdk", consequence)) from e


def export_interval_millis(reader: PeriodicExportingMetricReader) -> float:
    return _reader_millis(reader, "_export_interval_millis", "The start-up line cannot show the push interval.")


def export_timeout_millis(reader: PeriodicExportingMetricReader) -> float:
    return _reader_millis(reader, "_export_timeout_millis", "The final flush at shutdown cannot be bounded.")


def translate_to_prometheus(reader: PrometheusMetricReader, data: MetricsData, families: dict) -> None:
    """The stock reader's MetricsData → prometheus_client families step (bench/scale.py only)."""
    reader._collector._translate_to_prometheus(data, families)


# The names and signatures above, for tests/test_otel_compat.py.
RECEIVE_HOOK = (MetricReader, "_receive_metrics")
