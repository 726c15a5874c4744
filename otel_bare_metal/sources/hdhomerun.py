"""HDHomeRun devices as a source: one reading per device per collection, all devices at once.

Per device and collection the exporter sends **one request per tuner** (``/tunerN/debug``).
Model, hardware model, firmware version, device id and tuner count are read once and cached
(re-read after the device has been unreachable, since it may have been replaced or upgraded).
Every device has one deadline for its whole collection; all devices are collected
concurrently, so a fleet takes about as long as its slowest device, and a dead device costs
at most the timeout and delays nobody else.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

from otel_bare_metal.hdhomerun import Client, DeviceError, HDHomeRunError, TunerDebug, discover, parse_address
from otel_bare_metal.logutil import RateLimitedLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceInfo:
    model: str
    hwmodel: str
    version: str
    device_id: str
    tuner_count: int


@dataclass(frozen=True)
class DeviceReading:
    """What one collection learned about one device.  ``up`` is False when it did not answer
    completely in time; ``error`` then says why."""

    address: str
    up: bool
    duration: float
    info: DeviceInfo | None = None
    tuners: dict[int, TunerDebug] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class FleetReading:
    devices: list[DeviceReading]
    errors: list[str] = field(default_factory=list)


class Device:
    """One configured or probed device: a reused connection and the cached facts."""

    def __init__(self, address: str, timeout: float, client_factory: Callable[[str, float], Client] = Client,
                 device_id: Callable[[str], str] | None = None, clock: Callable[[], float] = time.monotonic):
        host, port = parse_address(address)  # raises ValueError on a malformed address
        self.address = address
        self.timeout = timeout
        self._client = client_factory(address, timeout)
        self._device_id = device_id or _discover_device_id
        self._clock = clock
        self._info: DeviceInfo | None = None
        self._lock = threading.Lock()
        self._warn = RateLimitedLog(log)  # a dead device would otherwise log every scrape
        self.requests = 0

    def _get(self, deadline: float, call: Callable[[], object]):
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise TimeoutError("deadline passed before the request")
        self._client.timeout = remaining
        self.requests += 1
        return call()

    def read(self) -> DeviceReading:
        with self._lock:  # a probe and a /metrics collection of one device never interleave
            start = self._clock()
            deadline = start + self.timeout
            try:
                if self._info is None:
                    self._info = self._read_info(deadline)
                tuners = {}
                for n in range(self._info.tuner_count):
                    tuners[n] = self._get(deadline, lambda n=n: self._client.tuner_debug(n))
                return DeviceReading(self.address, True, self._clock() - start, self._info, tuners)
            except (HDHomeRunError, OSError, ValueError) as e:
                self._info = None  # re-read the facts when it comes back
                reason = _reason(e)
                self._warn(logging.WARNING, reason, "HDHomeRun device %s is down: %s", self.address, reason)
                return DeviceReading(self.address, False, self._clock() - start, error=reason)

    def _read_info(self, deadline: float) -> DeviceInfo:
        c = self._client
        model = self._get(deadline, c.model)
        hwmodel = self._optional(deadline, c.hwmodel)
        version = self._optional(deadline, c.version)
        count = self._get(deadline, lambda: c.tuner_count(refresh=True))
        self.requests += count  # tuner_count probes /tunerN/debug count + 1 times
        return DeviceInfo(model, hwmodel, version, self._device_id(self.address), count)

    def _optional(self, deadline: float, call: Callable[[], str]) -> str:
        try:
            return self._get(deadline, call)
        except DeviceError:  # older firmware lacks some /sys variables
            return ""

    def close(self) -> None:
        self._client.close()


def _discover_device_id(address: str) -> str:
    """The device id, from one unicast discover to the device (the id travels only in
    discover replies).  Empty when the device does not answer it."""
    host, port = parse_address(address)
    try:
        found = discover(host, port=port, attempts=1, window=0.2)
    except (OSError, ValueError):
        return ""
    return f"{found[0].device_id:08X}" if found else ""


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]


class OneDevice:
    """A single device as a source (what ``/probe?target=`` collects)."""

    def __init__(self, device: Device):
        self.device = device

    def read(self) -> FleetReading:
        return FleetReading([self.device.read()])

    def close(self) -> None:
        self.device.close()


class Fleet:
    """Configured devices, collected concurrently; ``read`` never raises and never takes
    much longer than the timeout."""

    def __init__(self, addresses: list[str], timeout: float = 2.5, device_factory: Callable[[str, float], Device] = Device):
        self.timeout = timeout
        self.devices = [device_factory(a, timeout) for a in dict.fromkeys(addresses)]
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(256, len(self.devices))), thread_name_prefix="hdhomerun")

    def read(self) -> FleetReading:
        futures = {self._pool.submit(d.read): d for d in self.devices}
        done, _ = wait(futures, timeout=self.timeout + 0.5)
        readings = []
        for future, device in futures.items():
            if future in done:
                reading = future.result()
            else:  # the worker is still inside its own deadline; report it down now
                reading = DeviceReading(device.address, False, self.timeout, error="timeout")
            readings.append(reading)
        return FleetReading(readings)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for d in self.devices:
            d.close()
