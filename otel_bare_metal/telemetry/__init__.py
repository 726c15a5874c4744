"""The telemetry layer: records → OpenTelemetry observable instruments.  It never opens a file or socket."""

from __future__ import annotations

from opentelemetry.metrics import Meter

from otel_bare_metal.telemetry.collection import Collector, Observer, register, self_monitoring_observers
from otel_bare_metal.telemetry.host import CPUObservers, FilesystemObservers

# collector name → the class that maps its records.
OBSERVER_CLASSES = {"cpu": CPUObservers, "filesystem": FilesystemObservers}


def instrument(meter: Meter, collectors: list[Collector], extra: dict[str, Observer] | None = None) -> None:
    """Register self-monitoring and every instrument of the given collectors on ``meter``."""
    observers: dict[str, Observer] = dict(self_monitoring_observers(collectors))
    for c in collectors:
        cls = OBSERVER_CLASSES.get(c.name)
        if cls is not None:
            observers.update(cls(c).observers())
    if extra:
        observers.update(extra)
    register(meter, observers)


__all__ = ["Collector", "instrument", "register"]
