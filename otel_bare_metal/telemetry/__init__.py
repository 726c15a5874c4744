"""The telemetry layer: records → OpenTelemetry observable instruments.  It never opens a file or socket."""

from __future__ import annotations

from typing import Any, Sequence

from opentelemetry.metrics import Meter

from otel_bare_metal.telemetry.collection import (
    Collection,
    SELF_MONITORING,
    SourceWorker,
    Observer,
    check_bound,
    register,
    self_monitoring_observers,
)
from otel_bare_metal.telemetry.definitions import Metric
from otel_bare_metal.telemetry.naming import classic_table

NAMINGS = ("otel", "classic")


def instrument(
    meter: Meter,
    workers: list[SourceWorker],
    self_monitoring: bool = True,
    naming: str = "otel",
    drop_attributes: frozenset[str] = frozenset(),
    registry=None,
    unmonitored: Sequence[tuple[SourceWorker, Any]] = (),
) -> Collection:
    """Register the instruments of the given workers' collectors on ``meter`` (and, unless told not
    to, the per-collector self-monitoring), named the OpenTelemetry way or the classic way.
    Each collector's observers and definitions come from its spec in the collector registry
    (``otel_bare_metal.registry``; ValueError when they disagree).  ``drop_attributes`` applies
    to classic names (``/probe`` drops the device: ``instance`` names it).
    ``unmonitored`` are (collector, spec) pairs read in the same collection but left out of
    the self-monitoring (the exporter's own process metrics: ``otel_bare_metal.process``).
    Returns the :class:`Collection` (scrape deadlines, ``/healthz``)."""
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {NAMINGS}, not {naming!r}")
    if registry is None:
        from otel_bare_metal.registry import registry as default_registry

        registry = default_registry()
    observers: dict[Metric, Observer] = {}
    definitions: list[Metric] = []
    for c in workers:
        spec = registry.get(c.name)
        observers.update(c.bind(spec.observers(c).observers()))
        definitions.extend(spec.metrics)
    for c, spec in unmonitored:
        observers.update(c.bind(spec.observers(c).observers()))
        definitions.extend(spec.metrics)
    if self_monitoring:  # last: their callbacks run after every other one, so success counts observer failures too
        observers.update(self_monitoring_observers(workers))
        definitions.extend(SELF_MONITORING)
    collection = Collection(list(workers) + [c for c, _ in unmonitored])
    if naming == "classic":
        check_bound(definitions, observers)
        definitions, observers = classic_table(observers, definitions, drop_attributes)
    else:  # a classic-only row (definitions.Metric.classic_only) is left out, with its observer
        definitions = [d for d in definitions if not d.classic_only]
        observers = {metric: observe for metric, observe in observers.items() if not getattr(metric, "classic_only", False)}
    register(meter, observers, collection, definitions)
    return collection


__all__ = ["SELF_MONITORING", "Collection", "SourceWorker", "check_bound", "instrument", "register"]
