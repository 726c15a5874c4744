"""The telemetry layer: records → OpenTelemetry observable instruments.  It never opens a file or socket."""

from __future__ import annotations

from opentelemetry.metrics import Meter

from otel_bare_metal.telemetry.collection import Collection, Collector, Observer, register, self_monitoring_observers
from otel_bare_metal.telemetry.hdhomerun import HDHomeRunObservers
from otel_bare_metal.telemetry.host import CPUObservers, FilesystemObservers
from otel_bare_metal.telemetry.naming import classic_table

# collector name → the class that maps its records.
OBSERVER_CLASSES = {"cpu": CPUObservers, "filesystem": FilesystemObservers, "hdhomerun": HDHomeRunObservers}


NAMINGS = ("otel", "classic")


def instrument(
    meter: Meter,
    collectors: list[Collector],
    self_monitoring: bool = True,
    naming: str = "otel",
    drop_attributes: frozenset[str] = frozenset(),
) -> Collection:
    """Register the instruments of the given collectors on ``meter`` (and, unless told not
    to, the per-collector self-monitoring), named the OpenTelemetry way or the classic way.
    ``drop_attributes`` applies to classic names (``/probe`` drops the device: ``instance`` names it).
    Returns the :class:`Collection` (scrape deadlines, ``/healthz``)."""
    observers: dict[str, Observer] = dict(self_monitoring_observers(collectors)) if self_monitoring else {}
    for c in collectors:
        observers.update(OBSERVER_CLASSES[c.name](c).observers())
    collection = Collection(collectors)
    if naming == "classic":
        definitions, classic_observers = classic_table(observers, drop_attributes)
        register(meter, classic_observers, collection, definitions)
    elif naming == "otel":
        register(meter, observers, collection)
    else:
        raise ValueError(f"naming must be one of {NAMINGS}, not {naming!r}")
    return collection


__all__ = ["Collection", "Collector", "instrument", "register"]
