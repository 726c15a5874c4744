"""What a metric row is: ``Metric`` (name, kind, unit, description, attributes, Prometheus
name) and its ``Classic`` names.  The rows themselves live with the collector that emits them
(``otel_bare_metal/collectors/<name>/metrics.py``, or a plugin's package) and reach everything
else through the collector registry: instruments, the Prometheus page's names, classic names
and ``docs/metrics.md`` (``python -m otel_bare_metal.docgen``).

Each row also carries its *classic* names (``--metrics.naming classic``): how node_exporter or
mdlayher/hdhomerun_exporter name and label the same figure.  A classic metric is derived from
the row's own observations by a declarative mapping (rename labels and values, keep or sum some
``state`` values, take the value from an attribute), so there is no second copy of any collector.

A row marked ``classic_only`` (node_exporter's ``mount_info``) exists only for its classic
metrics: ``telemetry.instrument`` leaves it and its observer out in OTel mode, so the binding
check still holds in both modes, and docs/metrics.md shows "— (classic only)" as its Prometheus name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


class Kind(enum.Enum):
    COUNTER = "counter"  # observable counter: monotonic cumulative sum
    UPDOWN = "updowncounter"  # observable up-down counter: non-monotonic sum (a gauge in Prometheus)
    GAUGE = "gauge"  # observable gauge


def _frozen(mapping: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Classic:
    """One classic (node_exporter / hdhomerun_exporter) metric derived from a row's observations."""

    name: str  # exactly as the classic exporter's page shows it
    labels: Mapping[str, str]  # our attribute → classic label; attributes not named are dropped
    description: str
    states: tuple[str, ...] = ()  # keep only these values of ``state_attribute``, summed (node free = free + reserved)
    state_attribute: str = ""
    values: Mapping[str, Mapping[Any, str]] = field(default_factory=_frozen)  # attribute → {ours: classic}
    value_from: tuple[str, Mapping[str, float]] | None = None  # the value is this attribute, mapped
    kind: "Kind | None" = None  # when the classic exporter uses another kind (hdhomerun_exporter: all gauges)
    constant: Mapping[str, str] = field(default_factory=_frozen)  # labels with a fixed value


@dataclass(frozen=True, eq=False)
class Metric:
    """One metric row.  A row is its own identity: observers are bound to the row object
    (``{ROW: observe}``), never to its name typed a second time, so rows compare and hash by
    identity."""

    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...]
    collector: str
    # The Prometheus name when the reader's own translation would be wrong: a name ending in
    # ``_count`` (``system.cpu.logical.count``) is reserved for histograms and summaries, and
    # promtool rejects it.  The OTLP name stays the semantic-convention one (so through a
    # Collector it is ``system_cpu_logical_count``: alerts and dashboards do not use it).
    prometheus: str | None = None
    classic: tuple[Classic, ...] = ()
    # Registered only under ``--metrics.naming classic``, as its classic metrics: a figure that
    # exists for drop-in compatibility and has no OpenTelemetry counterpart (no semantic
    # convention, nothing in OTel mode to join it with).  The row still names the attributes its
    # observer gives, so the binding checks and docs/metrics.md cover it like any other row.
    classic_only: bool = False

    @property
    def prometheus_name(self) -> str:
        """The name on /metrics: the OpenTelemetry Prometheus reader's translation
        (dots → underscores, unit suffix, ``_total`` on counters) unless overridden."""
        from otel_bare_metal._otel_compat import map_unit, sanitize_full_name

        if self.prometheus:
            return self.prometheus
        name = sanitize_full_name(self.name)
        unit = map_unit(self.unit)
        if unit and not name.endswith("_" + unit):
            name += "_" + unit
        if self.ratio and not name.endswith("_ratio"):
            name += "_ratio"
        return name + "_total" if self.kind is Kind.COUNTER else name

    @property
    def ratio(self) -> bool:
        """A gauge with unit ``1``: a true ratio (0 to 1).  Prometheus's OTLP translation
        (``otlptranslator``, used by the Collector's ``prometheus`` and ``prometheus_remote_write``
        exporters and by Prometheus's own OTLP receiver) appends ``_ratio`` to it, and so do we on
        /metrics, so the name is the same on every path.  Everything else that is a plain number
        (up, info, state and error gauges) has no unit at all, so no path adds a suffix."""
        return self.unit == "1" and self.kind is Kind.GAUGE
