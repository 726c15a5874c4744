"""``/probe?target=ADDRESS``: one HDHomeRun device's metrics, the blackbox_exporter way.

Memory is flat in the number of targets probed (bench/probe_memory.py holds it to that):

* **One MeterProvider for every probe.**  The SDK registers an ``os.register_at_fork`` hook for
  each MeterProvider that can never be removed (about 850 bytes each), so a provider per target
  leaked however the targets were cached.  The probe instruments are registered once, on one
  provider, and observe *the probe being rendered on the calling thread* (a thread-local slot):
  the SDK runs observable callbacks on the thread that collects.
* **A reader per recent target.**  The SDK keeps one aggregation per attribute set it has ever
  seen, per reader; a reader shared by targets would keep every past target's series.  The
  :data:`~otel_bare_metal.limits.PROBE_READERS` most recently probed targets therefore keep a
  reader of their own (a ``PrometheusPage``, added to the provider with
  ``MeterProvider.add_metric_reader``), so a repeated probe costs the SDK's work per point, not a
  new storage and cold encoder caches; any other target, and a device down that has no reader
  yet, gets a reader for its probe.  A reader
  is removed (``remove_metric_reader``), and its storage goes with it, when its target falls out
  of that set, and replaced by a fresh one when the device's attribute sets change (another
  channel, another device at the address: ``metrics.attribute_key``) or a collection failed,
  so a reader holds one reading's series, never a history.  A probe of a target whose reader
  is busy with another probe of it renders on a reader of its own for that one probe.  One
  collection sees one reader's thread-local reading, so two targets never mix in one response.
* **Devices in a bounded LRU.**  A ``Device`` (its connection and the facts it learned) is kept
  for the :data:`~otel_bare_metal.limits.PROBE_DEVICES` most recently probed targets and closed
  when evicted.

The device is read *before* the collection, outside the SDK's collection lock, so a dead or
slow device delays only its own probe.  Probes of one device that arrive while it is being
read join that read (``Device.read`` is single-flight) and each waits at most until its own
deadline.  Their log lines count against their own budget
(:data:`~otel_bare_metal.logutil.PROBE_BUDGET`), never the configured devices'.  One deadline
covers a probe: the allowlist's name lookup, the device read and the render.  How many probes
run at once is bounded by the route's own budget (``--hdhomerun.max-probes``, ``Route.limit``,
which the HTTP server enforces), apart from the ``/metrics`` scrapes (``--web.max-requests``),
so probes never take the room Prometheus needs.

:class:`Probe` is the route the hdhomerun collector's spec hands the app: it checks the target
against the allowlist and answers with status, body and content type; the app owns HTTP.  The
Prometheus page it renders with comes from the app too (``page``), so nothing here imports the
exposition layer.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, Mapping

from opentelemetry.sdk.resources import Resource

from otel_bare_metal import __version__, limits
from otel_bare_metal.collectors.hdhomerun.fleet import Device, DeviceReading, FleetReading, LocateFunction
from otel_bare_metal.collectors.hdhomerun.allowlist import FLAG, Allowlist, ResolveTimeout, TargetNotAllowed
from otel_bare_metal.collectors.hdhomerun.metrics import METRICS, HDHomeRunObservers, attribute_key
from otel_bare_metal.logutil import PROBE_BUDGET, RateLimitedLog
from otel_bare_metal.telemetry import NAMINGS, register
from otel_bare_metal.telemetry.naming import classic_table
from otel_bare_metal.telemetry.provider import meter_provider

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log, budget=PROBE_BUDGET)

MAX_TARGETS = limits.PROBE_DEVICES
MAX_READERS = limits.PROBE_READERS
#: Probes served at once by default (``--hdhomerun.max-probes``), as many as ``--web.max-requests``
#: allows scrapes of ``/metrics``.
DEFAULT_MAX_PROBES = 40


class _RenderingProbe:
    """What the probe instruments observe: the reading of the probe that the calling thread is
    rendering (the SDK runs observable callbacks on the collecting thread).  It stands in for
    the ``SourceWorker`` the observers of a configured device read their ``result`` from; outside
    a render, or when the device read raised, there is no device and so no series."""

    _NONE = FleetReading([])

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, reading: DeviceReading | None) -> None:
        # Made once per probe: every instrument's callback reads it.
        self._local.fleet = FleetReading([reading]) if reading is not None else None

    @property
    def result(self) -> FleetReading:
        return getattr(self._local, "fleet", None) or self._NONE


class _Target:
    """One cached target: its device, and the reader (page) its probes render on, while it is
    among the most recently probed."""

    __slots__ = ("device", "lock", "page", "key", "closed", "unpage")

    def __init__(self, device: Device):
        self.device = device
        self.lock = threading.Lock()  # held by the probe rendering on ``page``; never waited for
        self.page: Any = None
        self.key: tuple | None = None  # metrics.attribute_key of the readings ``page`` has seen
        self.closed = False  # evicted: its device is closed, its reader goes
        self.unpage = False  # its reader goes (fewer readers than targets are kept)


class ProbeTarget:
    """One target's handle: ``render`` reads its device and encodes that one reading."""

    def __init__(self, targets: "ProbeTargets", target: _Target):
        self._targets = targets
        self._target = target
        self.device = target.device

    def render(self, accept: str | None, deadline: float | None = None) -> tuple[bytes, str]:
        return self._targets.render_target(self._target, accept, deadline)


class ProbeTargets:
    """The probed targets and the one provider they are rendered through.  ``page(target_info=,
    metrics=)`` makes the Prometheus page of one target (the app passes ``PrometheusPage``)."""

    def __init__(self, timeout: float, resource: Resource, *, page: Callable[..., Any], max_targets: int = MAX_TARGETS,
                 device_factory: Callable[[str, float], Device] | None = None, naming: str = "otel",
                 locate: LocateFunction | None = None, max_readers: int = MAX_READERS):
        self.timeout = timeout
        self._page = page
        # A probed device logs against the probes' budget; a device id (only a configured
        # one passes the allowlist) is found the way the configured devices are.
        self._device_factory = device_factory or functools.partial(Device, locate=locate, log_budget=PROBE_BUDGET)
        self._evicted: list[_Target] = []
        self._targets: limits.BoundedCache[object, _Target] = limits.BoundedCache(
            max_targets, on_evict=lambda _key, target: self._evicted.append(target))
        self._unpaged: list[_Target] = []
        self._paged: limits.BoundedCache[_Target, _Target] = limits.BoundedCache(
            max_readers, on_evict=lambda _key, target: self._unpaged.append(target))
        self._lock = threading.Lock()
        self._rendering = _RenderingProbe()
        self._provider = meter_provider(resource, [])
        observers = HDHomeRunObservers(self._rendering).observers()  # type: ignore[arg-type]  # stands in for a SourceWorker: it has the one attribute read, .result
        if naming == "classic":  # classic names drop the device label: hdhomerun_exporter's ``instance`` names it
            definitions, observers = classic_table(observers, METRICS, frozenset({"hdhomerun.device"}))
        elif naming == "otel":
            definitions = list(METRICS)
        else:
            raise ValueError(f"naming must be one of {NAMINGS}, not {naming!r}")
        # No collectors to run: the device is read before the collection, by render_target.
        self._definitions = register(self._provider.get_meter("otel_bare_metal", __version__), observers, [], definitions)

    def get(self, target: str) -> ProbeTarget:
        """The target's handle, with its cached Device (a new one if it is not cached)."""
        with self._lock:  # the target is the allowlist's canonical ip:port: one key, one Device, one connection
            cached = self._targets.get(target)
            if cached is None:
                cached = self._targets.put(target, _Target(self._device_factory(target, self.timeout)))
            evicted, self._evicted = self._evicted, []
        for old in evicted:
            self._close(old)
        return ProbeTarget(self, cached)

    def render_target(self, target: _Target, accept: str | None, deadline: float | None = None) -> tuple[bytes, str]:
        """Read the target's device (within its timeout, and by ``deadline``, the scrape's, when
        given), then render that one reading by the same deadline on the target's reader."""
        device = target.device
        try:
            reading: DeviceReading | None = device.read() if deadline is None else device.read(deadline)
        except Exception as e:  # like any failing source: no series, never a failed request
            address = getattr(device, "address", "?")
            _warn(logging.WARNING, address, "probe failed", device=address, err=f"{type(e).__name__}: {e}")
            reading = None
        if not target.lock.acquire(blocking=False):  # another probe of it is rendering: never wait for it
            return self._render_once(reading, accept, deadline)
        try:
            if target.closed:
                return self._render_once(reading, accept, deadline)
            key = attribute_key(reading)
            if target.page is None and key is None:  # a device down, never read: a reader for this probe only
                return self._render_once(reading, accept, deadline)
            if target.unpage or (key is not None and target.key is not None and key != target.key):
                self._retire(target)  # other attribute sets: a fresh reader, so no stale aggregation stays
            with self._lock:  # the most recently probed targets keep their readers
                if target.page is None or self._paged.get(target) is None:
                    self._paged.put(target, target)
                unpaged, self._unpaged = self._unpaged, []
            for other in unpaged:
                other.unpage = True
                self._retire_if_free(other)
            if target.page is None:
                target.page = self._new_page()
            if key is not None:
                target.key = key
            try:
                return self._render_on(target.page, reading, accept, deadline)
            except BaseException:  # a collection cut short may leave measurements in the storage
                self._retire(target)
                raise
        finally:
            target.lock.release()
            if target.closed or target.unpage:  # evicted meanwhile: whoever holds the lock last retires the reader
                self._retire_if_free(target)

    def _new_page(self) -> Any:
        page = self._page(target_info=False, metrics=self._definitions)
        page.keep_last = False  # a probe's page is its own reading's, never an earlier one
        self._provider.add_metric_reader(page.reader)
        return page

    def _render_on(self, page: Any, reading: DeviceReading | None, accept: str | None,
                   deadline: float | None) -> tuple[bytes, str]:
        try:
            self._rendering.set(reading)
            return page.render(accept, deadline)
        finally:
            self._rendering.set(None)

    def _render_once(self, reading: DeviceReading | None, accept: str | None, deadline: float | None) -> tuple[bytes, str]:
        """``reading`` rendered on a reader made for it and removed afterwards."""
        page = self._new_page()
        try:
            return self._render_on(page, reading, accept, deadline)
        finally:
            self._provider.remove_metric_reader(page.reader)

    def _retire(self, target: _Target) -> None:
        """Remove the target's reader (and so its SDK storage); the caller holds its lock."""
        page, target.page, target.key, target.unpage = target.page, None, None, False
        if page is not None:
            self._provider.remove_metric_reader(page.reader)

    def _retire_if_free(self, target: _Target) -> None:
        if target.lock.acquire(blocking=False):
            try:
                if target.closed or target.unpage:
                    self._retire(target)
            finally:
                target.lock.release()

    def _close(self, target: _Target) -> None:
        target.closed = True
        with self._lock:
            self._paged.pop(target)
        self._retire_if_free(target)
        target.device.close()

    def __len__(self) -> int:
        return len(self._targets)

    def close(self) -> None:
        with self._lock:
            targets = [t for _, t in self._targets.clear()] + self._evicted
            self._evicted = []
        for t in targets:
            self._close(t)
        self._provider.shutdown()


TEXT = "text/plain; charset=utf-8"


class Probe:
    """``/probe?target=ADDRESS``: one target, checked against the allowlist (resolved once, so
    the device dialled is the one checked), read and rendered by the scrape's ``deadline``: one
    deadline for the name lookup, the read and the render."""

    def __init__(self, allowlist: Allowlist, targets: ProbeTargets):
        self.allowlist = allowlist
        self.targets = targets

    def __call__(self, query: Mapping[str, list], accept: str | None, deadline: float) -> tuple[int, bytes, str]:
        targets = [t for t in query.get("target", []) if t.strip()]
        if len(targets) != 1:
            return 400, b"exactly one target parameter is required, e.g. /probe?target=192.168.1.8\n", TEXT
        target = targets[0].strip()
        try:
            address = self.allowlist.check(target, deadline)  # resolved once: dial exactly what was checked
        except TargetNotAllowed as e:  # the reason (and the rules) go to the log, not to the caller
            log.debug("probe refused", extra={"target": target, "reason": str(e)})
            return 403, f"target {target!r} is not allowed; see {FLAG}\n".encode(), TEXT
        except ResolveTimeout as e:
            log.debug("probe gave up", extra={"target": target, "reason": str(e)})
            return 503, f"target {target!r} did not resolve in time\n".encode(), TEXT
        except ValueError as e:
            return 400, f"bad target: {e}\n".encode(), TEXT
        body, content_type = self.targets.get(address).render(accept, deadline)
        return 200, body, content_type

    def close(self) -> None:
        self.targets.close()
