"""The telemetry layer: records → OpenTelemetry observable instruments.  It never opens a file or socket."""

from __future__ import annotations

from opentelemetry.metrics import Meter

from otel_bare_metal.telemetry.collection import Collector, Observer, register, self_monitoring_observers
from otel_bare_metal.telemetry.hdhomerun import HDHomeRunObservers
from otel_bare_metal.telemetry.host import CPUObservers, FilesystemObservers

# collector name → the class that maps its records.
OBSERVER_CLASSES = {"cpu": CPUObservers, "filesystem": FilesystemObservers, "hdhomerun": HDHomeRunObservers}


def instrument(meter: Meter, collectors: list[Collector], self_monitoring: bool = True) -> None:
    """Register the instruments of the given collectors on ``meter`` (and, unless told not
    to, the per-collector self-monitoring)."""
    observers: dict[str, Observer] = dict(self_monitoring_observers(collectors)) if self_monitoring else {}
    for c in collectors:
        observers.update(OBSERVER_CLASSES[c.name](c).observers())
    register(meter, observers, collectors)


__all__ = ["Collector", "instrument", "register"]
