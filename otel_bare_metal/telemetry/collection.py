"""Read each source once per collection and share the result among its instruments.

The OpenTelemetry SDK calls every observable instrument's callbacks once per reader
collection, in the order the instruments were created, all on the collecting thread (and
one collection at a time: the SDK's measurement consumer holds a lock).  ``register`` makes
the first instrument's callback read every source first (timing each one) and keep the
records in a thread-local slot; every instrument, that one included, then maps those
records.  So a source is read exactly once per collection — by a Prometheus scrape or by an
OTLP export alike — and one source failing makes only its own ``success`` 0, never the scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_bare_metal.logutil import RateLimitedLog
from otel_bare_metal.telemetry.definitions import METRICS, Kind, Metric

log = logging.getLogger(__name__)


class Source(Protocol):
    def read(self) -> Any: ...


class Collector:
    """One named source, read once per collection.

    A record with a non-empty ``errors`` list (lines a parser could not read) still exports
    what it has, but marks the collection unsuccessful.
    """

    def __init__(self, name: str, source: Source, clock: Callable[[], float] = time.perf_counter):
        self.name = name
        self.source = source
        self._clock = clock
        self._local = threading.local()
        self._warn = RateLimitedLog(log)
        self.attributes = {"collector": name}

    def refresh(self) -> None:
        start = self._clock()
        try:
            result = self.source.read()
            errors = list(getattr(result, "errors", ()) or ())
        except Exception as e:  # a source failing must never fail the scrape
            result, errors = None, [f"{type(e).__name__}: {e}"]
        local = self._local
        local.result = result
        local.duration = self._clock() - start
        local.success = not errors
        for error in errors:
            self._warn(logging.WARNING, f"{self.name}:{error}", "collector %s: %s", self.name, error)

    @property
    def result(self) -> Any:
        return getattr(self._local, "result", None)

    @property
    def duration(self) -> float:
        return getattr(self._local, "duration", 0.0)

    @property
    def success(self) -> bool:
        return getattr(self._local, "success", False)

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close:
            close()


Observer = Callable[[], Iterable[Observation]]


def self_monitoring_observers(collectors: list[Collector]) -> dict[str, Observer]:
    def duration() -> Iterable[Observation]:
        return [Observation(c.duration, c.attributes) for c in collectors]

    def success() -> Iterable[Observation]:
        return [Observation(1 if c.success else 0, c.attributes) for c in collectors]

    return {"otel_bare_metal.collector.duration": duration, "otel_bare_metal.collector.success": success}


def register(
    meter: Meter,
    observers: dict[str, Observer],
    collectors: list[Collector],
    definitions: Iterable[Metric] = METRICS,
) -> list[Metric]:
    """Create one observable instrument per definition that has an observer, in table order;
    the first one refreshes ``collectors`` before it observes."""
    created = []
    for d in definitions:
        observe = observers.get(d.name)
        if observe is None:
            continue
        if not created:
            observe = _refreshing(collectors, observe)
        create = {
            Kind.COUNTER: meter.create_observable_counter,
            Kind.UPDOWN: meter.create_observable_up_down_counter,
            Kind.GAUGE: meter.create_observable_gauge,
        }[d.kind]
        create(d.name, callbacks=[_callback(observe)], unit=d.unit, description=d.description)
        created.append(d)
    return created


def _refreshing(collectors: list[Collector], observe: Observer) -> Observer:
    def refresh_then_observe() -> Iterable[Observation]:
        for c in collectors:
            c.refresh()
        return observe()

    return refresh_then_observe


def _callback(observe: Observer) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return observe()

    return callback
