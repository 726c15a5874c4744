"""The Prometheus pull path: the OpenTelemetry Prometheus reader on a private registry.

Traps this module is built around (see docs/architecture.md):

* The reader hands each collection to its registry collector through a queue; two scrapes at
  once can return one response with every series twice and another empty.  Rendering is
  therefore serialised with a lock: one collection, one response.
* The reader's default cardinality limit (2000 points per instrument) silently folds a
  256-CPU host's ``system.cpu.time`` (2048 points) into an ``otel_metric_overflow`` series.
  We raise the limit far beyond any real host.
* ``otel_scope_*`` labels on every sample double the payload; they are off unless asked for.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from otel_bare_metal.telemetry.definitions import METRICS

# Points per instrument before the SDK folds series into an overflow series.  A 1024-CPU host
# has 10 240 cpu-time points; 2000 mounts × 3 states is 6000.  Far above both.
CARDINALITY_LIMIT = 1_000_000
CARDINALITY_LIMITS = {
    cls: CARDINALITY_LIMIT
    for cls in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)
}


class _RenamingReader(PrometheusMetricReader):
    """The stock reader, with the Prometheus names the definitions table overrides.

    The OTLP path keeps the instrument names; only this reader sees the new ones.
    """

    def __init__(self, renames: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self._renames = renames

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs) -> None:
        if metrics_data is not None and self._renames:
            metrics_data = _rename(metrics_data, self._renames)
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)


def _rename(data: MetricsData, renames: dict[str, str]) -> MetricsData:
    def scope(sm):
        if not any(m.name in renames for m in sm.metrics):
            return sm
        return replace(sm, metrics=[replace(m, name=renames[m.name]) if m.name in renames else m for m in sm.metrics])

    return replace(
        data,
        resource_metrics=[replace(rm, scope_metrics=[scope(sm) for sm in rm.scope_metrics]) for rm in data.resource_metrics],
    )


def prometheus_renames() -> dict[str, str]:
    """instrument name → the name the reader must give it so that the exposition shows
    ``Metric.prometheus`` (the reader appends no suffix to a unitless gauge)."""
    return {m.name: m.prometheus for m in METRICS if m.prometheus}


class PrometheusPage:
    """A Prometheus reader with its own registry; ``render`` gives one complete exposition."""

    def __init__(self, scope_labels: bool = False, target_info: bool = True):
        self.registry = CollectorRegistry(auto_describe=False)
        self.reader = _RenamingReader(
            prometheus_renames(),
            disable_target_info=not target_info,
            scope_info_enabled=scope_labels,
            registry=self.registry,
            cardinality_limits=CARDINALITY_LIMITS,
        )
        self._lock = threading.Lock()

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """Collect once and encode as the client asked (Prometheus text or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept or "")
        with self._lock:
            body = encoder(self.registry)
        return body, content_type

    def shutdown(self) -> None:
        self.reader.shutdown()
