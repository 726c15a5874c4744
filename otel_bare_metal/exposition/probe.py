"""``/probe?target=ADDRESS``: one HDHomeRun device's metrics, the blackbox_exporter way.

Each target gets its own MeterProvider and Prometheus page, cached and reused: a fresh
provider per request leaks (the SDK registers a fork hook per provider).  The cache is
bounded; the least recently probed target is shut down when a new one needs room.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

from opentelemetry.sdk.resources import Resource

from otel_bare_metal import __version__
from otel_bare_metal.exposition.prometheus import PrometheusPage
from otel_bare_metal.sources.hdhomerun import Device, OneDevice
from otel_bare_metal.telemetry import Collector, instrument
from otel_bare_metal.telemetry.provider import meter_provider

MAX_TARGETS = 256


class ProbeTarget:
    def __init__(self, address: str, timeout: float, resource: Resource, device_factory: Callable[[str, float], Device] = Device,
                 naming: str = "otel"):
        self.collector = Collector("hdhomerun", OneDevice(device_factory(address, timeout)))
        self.page = PrometheusPage(target_info=False)
        self.provider = meter_provider(resource, [self.page.reader])
        # Classic names drop the device label on a probe: hdhomerun_exporter's ``instance`` names it.
        instrument(self.provider.get_meter("otel_bare_metal", __version__), [self.collector], self_monitoring=False,
                   naming=naming, drop_attributes=frozenset({"hdhomerun.device"}))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        return self.page.render(accept)

    def close(self) -> None:
        self.provider.shutdown()
        self.collector.close()


class ProbeTargets:
    def __init__(self, timeout: float, resource: Resource, max_targets: int = MAX_TARGETS,
                 device_factory: Callable[[str, float], Device] = Device, naming: str = "otel"):
        self.timeout = timeout
        self._naming = naming
        self._resource = resource
        self._max = max_targets
        self._device_factory = device_factory
        self._targets: OrderedDict[str, ProbeTarget] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, address: str) -> ProbeTarget:
        evicted = None
        with self._lock:
            target = self._targets.get(address)
            if target is not None:
                self._targets.move_to_end(address)
                return target
            target = ProbeTarget(address, self.timeout, self._resource, self._device_factory, self._naming)
            self._targets[address] = target
            if len(self._targets) > self._max:
                _, evicted = self._targets.popitem(last=False)
        if evicted is not None:
            evicted.close()
        return target

    def __len__(self) -> int:
        return len(self._targets)

    def close(self) -> None:
        with self._lock:
            targets, self._targets = list(self._targets.values()), OrderedDict()
        for t in targets:
            t.close()
