"""HDHomeRun devices as a source: one reading per device per collection, all devices at once.

Per device and collection the exporter sends **one request per tuner** (``/tunerN/debug``).

Facts (model, hardware model, firmware, device id, tuner count) are learned once and kept:

* device id and tuner count come from one unicast discover reply when the device sends them
  (the tuner count is probed, ``/tuner0/debug`` … until "unknown getset variable", only when
  the reply lacks it);
* learning **keeps its progress**: a fact is kept as soon as it is read, so a slow link that
  cannot fit every fact into one deadline finishes learning on the next try instead of
  starting over;
* after an outage the facts are checked again (the device may have been replaced or
  upgraded), one by one, the old ones serving until each is re-read: by the fleet's
  background retry (never in a scrape), or by the next ``/probe`` of the device.

A fleet (``/metrics``) never waits for a device that is known to be down:

* a device's first collection, and every collection while it answers, runs in the scrape,
  bounded by the scrape's deadline and ``--hdhomerun.timeout``;
* after a failure the device is reported ``up 0`` at once, scrape after scrape (the reason
  is logged, rate-limited), and retried on a background thread with exponential backoff
  (:data:`RETRY_FIRST` doubling to :data:`RETRY_MAX` seconds);
* when a retry succeeds, the next scrape collects it again.

``/probe`` builds its own :class:`Device` (its own connection) and reads it synchronously.

**One read in flight per device.**  A read that arrives while the device is being read joins
that read and returns its result (single flight); it waits at most until its own deadline,
never on a lock.  So a burst of probes of one device costs the device one read, and probes of
a dead device all end when the read in flight ends, not one after another.

**One device, one name.**  A device is named (its ``hdhomerun.device`` label, its cache key,
its log lines) by the canonical spelling of how it was given: ``ip:port`` with the port always
written (``10.0.0.5`` and ``10.0.0.5:65001`` are one device), a host name in lower case, or its
8-hex-digit device id in upper case.

**Device ids.**  A device given by its id (``1050ABCE``, as ``hdhomerun_config`` takes it; the
check digit is validated) is found by a discover request that carries the id (broadcast, or
sent to ``--hdhomerun.discover-address``); after a failure it is looked for again, so a device
whose address changed is found at its new one.

Counters derived from a device (resync, overflow, transport, CRC and network errors) never go
backwards: a device resets them when its tuner changes channel or it reboots, so each is
exported as a running total (the sum of the increases seen), not as the raw value.  A
negative value is not a count: it is rejected for that sample (the total stays where it was).
A discover reply claiming more than :data:`MAX_TUNERS` tuners is not believed: the tuners are
counted by probing instead (at most :data:`MAX_TUNERS`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable

from otel_bare_metal.address import canonical_host_port
from otel_bare_metal.hdhr import (
    DEFAULT_PORT,
    MAX_TUNERS,
    Client,
    DeviceError,
    DiscoveredDevice,
    HDHomeRunError,
    TunerDebug,
    discover,
    format_address,
    parse_address,
    parse_device_id,
)
from otel_bare_metal.deadline import HANDOVER, remaining
from otel_bare_metal.logutil import LogBudget, RateLimitedLog

log = logging.getLogger(__name__)

#: Seconds before the first background retry of a failed device; doubles up to RETRY_MAX.
RETRY_FIRST = 1.0
RETRY_MAX = 15.0


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


@dataclass(frozen=True)
class Discovered:
    """What a discover reply told about one device (``tuner_count`` None: not sent)."""

    device_id: str
    tuner_count: int | None


#: ``discover(address, window) -> Discovered | None`` (None: no reply within the window).
DiscoverFunction = Callable[[str, float], "Discovered | None"]
#: ``locate(device_id, window) -> DiscoveredDevice | None``: where the device with that id
#: answers now (None: nobody answered within the window).
LocateFunction = Callable[[int, float], "DiscoveredDevice | None"]


class DeviceNotFound(HDHomeRunError):
    """No device answered a discover request for the configured device id."""


def device_name(address: str) -> str:
    """The one name of a device given as ``address``: its canonical ``host:port``, or its device
    id in upper case.  Raises ValueError for a malformed address or an invalid device id."""
    device_id = parse_device_id(address)
    if device_id is not None:
        return f"{device_id:08X}"
    return canonical_host_port(address, DEFAULT_PORT)


class _Flight:
    """One read in progress; callers that arrive meanwhile wait for its reading."""

    __slots__ = ("done", "reading")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reading: DeviceReading | None = None

# The order facts are learned in: the model first (it proves the device speaks the protocol),
# then the discover reply (id and, usually, the tuner count), then the rest.
FACTS = ("model", "discover", "hwmodel", "version", "tuner_count")

# (section, field) of every counter in a /tunerN/debug reply.
COUNTERS = (("dev", "resync"), ("dev", "overflow"), ("cc", "resync"), ("cc", "overflow"),
            ("ts", "te"), ("ts", "crc"), ("net", "err"))


class Device:
    """One configured or probed device: a reused connection, the facts learned so far, and
    the running totals of its counters.

    ``address`` is an address (``host[:port]``) or a device id; its canonical spelling
    (:func:`device_name`) names the device in labels and logs.  ``dial`` (default: the address)
    is what the client connects to over TCP and what discover asks over UDP (``/probe`` passes
    the one address its allowlist checked, so a name is never resolved again).  A device given
    by id is dialled where ``locate`` finds it (required for an id: nothing here broadcasts on
    its own).  ``log_budget``: the :class:`~otel_bare_metal.logutil.LogBudget` its "device is
    down" lines count against (probed devices have their own, so they cannot silence the
    configured ones).
    """

    def __init__(self, address: str, timeout: float, client_factory: Callable[[str, float], Client] | None = None,
                 discover: DiscoverFunction | None = None, clock: Callable[[], float] = time.monotonic,
                 dial: str | None = None, locate: LocateFunction | None = None,
                 log_budget: LogBudget | None = None):
        self.address = device_name(address)  # raises ValueError on a malformed address or id
        self.device_id = parse_device_id(address)
        if self.device_id is not None and locate is None and dial is None:
            raise ValueError(f"device id {self.address}: no way to locate it (discovery is not configured)")
        self._locate = locate
        self.dial = dial or (None if self.device_id is not None else self.address)
        self.timeout = timeout
        self._client_factory = client_factory or bounded_client  # a name's lookup is bounded too
        self._client: Client | None = self._client_factory(self.dial, timeout) if self.dial is not None else None
        self._discover = discover or discover_device
        self._clock = clock
        self._facts: dict[str, object] = {}
        self._probed = 0  # tuners the count probe has confirmed so far
        self._verify: set[str] = set()  # facts to read again (after an outage)
        self._was_up = False
        self._totals: dict[tuple, list[int]] = {}  # (tuner, section, field) → [last raw, total]
        # Guards _flight only, never held across I/O.  A /probe builds its own Device, so a probe
        # and a /metrics collection of one device use separate connections.
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self._warn = RateLimitedLog(log, budget=log_budget)  # a dead device would otherwise log every scrape
        self.requests = 0
        self.reads = 0  # reads actually made (joined reads do not count)

    def _get(self, deadline: float, call: Callable[..., Any]) -> Any:
        """One request, handed the read's deadline itself (the client bounds every socket
        operation by it)."""
        if deadline <= self._clock():
            raise TimeoutError("deadline passed before the request")
        self.requests += 1
        return call(deadline=deadline)

    def read(self, deadline: float | None = None, verify: bool = True) -> DeviceReading:
        """Learn what is missing, then read every tuner, before ``deadline`` (a
        ``time.monotonic()`` value) and within the timeout.  ``verify`` also re-reads the
        facts an outage put in doubt: a probe and the fleet's background retry do; the fleet's
        scrape-time reads pass False.

        A read already in progress is joined: its reading is returned, or, when the caller's
        deadline comes first, a reading that says the device did not answer in time."""
        start = self._clock()
        end = start + self.timeout if deadline is None else min(deadline, start + self.timeout)
        with self._lock:
            flight = self._flight
            leader = flight is None
            if leader:
                flight = self._flight = _Flight()
        assert flight is not None
        if not leader:
            if flight.done.wait(max(0.0, end - self._clock())) and flight.reading is not None:
                return flight.reading
            return DeviceReading(self.address, False, self._clock() - start, error="timeout (waiting for the read in flight)")
        reading: DeviceReading | None = None
        try:
            reading = self._read(start, end, verify)
            return reading
        finally:
            with self._lock:
                self._flight = None
            flight.reading = reading
            flight.done.set()

    def _read(self, start: float, end: float, verify: bool) -> DeviceReading:
        self.reads += 1
        try:
            if self.device_id is not None and self.dial is None:
                self._find(end)
            info = self._learn(end, verify)
            tuners = {}
            for n in range(info.tuner_count):
                tuners[n] = self._totalled(n, self._get(end, partial(self._connected().tuner_debug, n)))
            self._was_up = True
            return DeviceReading(self.address, True, self._clock() - start, info, tuners)
        except (HDHomeRunError, OSError, ValueError) as e:
            if self._was_up:  # an outage: it may come back as another device
                self._verify = set(FACTS)
                self._was_up = False
            if self.device_id is not None and self._locate is not None:
                self.dial = None  # look for it again: its address may have changed
            reason = _reason(e)
            self._warn(logging.WARNING, reason, "HDHomeRun device is down", device=self.address, reason=reason)
            return DeviceReading(self.address, False, self._clock() - start, error=reason)

    def _find(self, deadline: float) -> None:
        """Locate a device given by id and connect the client to where it answered."""
        assert self._locate is not None and self.device_id is not None
        window = min(deadline - self._clock(), max(0.2, self.timeout / 2))
        if window <= 0:
            raise TimeoutError("deadline passed before discovery")
        found = self._locate(self.device_id, window)
        if found is None:
            raise DeviceNotFound(f"no device answered a discover request for id {self.address}")
        dial = format_address(found.ip, found.port)
        if self._client is not None:
            self._client.close()
        self.dial = dial
        self._client = self._client_factory(dial, self.timeout)
        self._facts["device_id"] = self.address
        if found.tuner_count is not None and 0 < found.tuner_count <= MAX_TUNERS:
            self._facts["tuner_count"] = found.tuner_count
            self._verify.discard("tuner_count")
        self._verify.discard("discover")

    @property
    def info(self) -> DeviceInfo | None:
        """The facts, once all are known."""
        f = self._facts
        if "tuner_count" not in f or not all(k in f for k in ("model", "hwmodel", "version", "device_id")):
            return None
        return DeviceInfo(f["model"], f["hwmodel"], f["version"], f["device_id"], f["tuner_count"])  # type: ignore[arg-type]  # each fact is stored with its own type as learned

    def _connected(self) -> Client:
        """The client; a device given by id has one once ``_find`` located it (``_read`` calls it first)."""
        assert self._client is not None, "a device given by id is located before it is read"
        return self._client

    def _learn(self, deadline: float, verify: bool) -> DeviceInfo:
        c = self._client
        assert c is not None and self.dial is not None
        for fact in FACTS:
            known = fact in self._facts or (fact == "discover" and "device_id" in self._facts)
            if known and not (verify and fact in self._verify):
                continue
            if fact == "model":
                self._facts["model"] = self._get(deadline, c.model)
            elif fact == "hwmodel":
                self._facts["hwmodel"] = self._optional(deadline, c.hwmodel)
            elif fact == "version":
                self._facts["version"] = self._optional(deadline, c.version)
            elif fact == "discover":
                window = min(deadline - self._clock(), max(0.2, self.timeout / 2))
                if window <= 0:
                    raise TimeoutError("deadline passed before discover")
                found = self._discover(self.dial, window)
                self._facts["device_id"] = found.device_id if found else ""
                if found and found.tuner_count is not None and 0 < found.tuner_count <= MAX_TUNERS:
                    self._facts["tuner_count"] = found.tuner_count
                    self._verify.discard("tuner_count")
                elif verify:
                    self._facts.pop("tuner_count", None)
                    self._probed = 0
            elif fact == "tuner_count" and (fact not in self._facts or fact in self._verify):
                self._facts["tuner_count"] = self._probe_tuner_count(deadline)
            self._verify.discard(fact)
        info = self.info
        assert info is not None
        return info

    def _probe_tuner_count(self, deadline: float) -> int:
        """``/tuner0/debug``, ``/tuner1/debug``… until "unknown getset variable"; keeps its
        progress across calls."""
        while self._probed < MAX_TUNERS:
            try:
                self._get(deadline, partial(self._connected().get, f"/tuner{self._probed}/debug"))
            except DeviceError as e:
                if e.is_unknown_variable():
                    break
                raise
            self._probed += 1
        count, self._probed = self._probed, 0
        return count

    def _optional(self, deadline: float, call: Callable[[], str]) -> str:
        try:
            return self._get(deadline, call)
        except DeviceError:  # older firmware lacks some /sys variables
            return ""

    def _totalled(self, tuner: int, debug: TunerDebug) -> TunerDebug:
        """``debug`` with every counter replaced by its running total (never backwards)."""
        changes: dict[str, dict[str, int | None]] = {}
        for section_name, name in COUNTERS:
            section = getattr(debug, section_name)
            raw = getattr(section, name, None) if section is not None else None
            if raw is None:
                continue
            state = self._totals.get((tuner, section_name, name))
            if raw < 0:  # not a count: rejected for this sample, never folded into the total
                self._warn(logging.WARNING, ("negative", section_name, name),
                           "HDHomeRun device sent a negative counter; ignored", device=self.address, tuner=tuner,
                           counter=f"{section_name}.{name}", value=raw)
                changes.setdefault(section_name, {})[name] = None if state is None else state[1]
                continue
            if state is None:
                state = self._totals[(tuner, section_name, name)] = [raw, raw]
            else:
                last, total = state
                state[0], state[1] = raw, total + (raw - last if raw >= last else raw)  # a reset counts from 0
            if state[1] != raw:  # the total is the raw value until the counter first resets
                changes.setdefault(section_name, {})[name] = state[1]
        if not changes:
            return debug
        return replace(debug, **{s: replace(getattr(debug, s), **fields) for s, fields in changes.items()})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def locator(addresses: list[str] | None) -> LocateFunction:
    """How devices given by id are found: a discover request carrying the id, sent to each of
    ``addresses`` (``--hdhomerun.discover-address``), or broadcast when there are none."""
    targets: list[str | None] = list(addresses or [])

    def locate(device_id: int, window: float) -> DiscoveredDevice | None:
        window = max(0.01, min(window, 30.0))
        per_target = window / max(1, len(targets))
        for target in targets or [None]:  # None: broadcast
            try:
                found = discover(target, attempts=1, window=per_target if target else window,
                                 allow_broadcast=target is None, device_id=device_id)
            except (OSError, ValueError):
                continue
            if found:
                return found[0]
        return None

    return locate


def bounded_client(address: str, timeout: float) -> Client:
    """A client whose connect resolves a device's name within the request's time, too."""
    from otel_bare_metal.collectors.hdhomerun.allowlist import connect_within

    return Client(address, timeout, connect=connect_within)


def discover_device(address: str, window: float) -> Discovered | None:
    """Device id and tuner count from one unicast discover to ``address`` (the id travels
    only in discover replies).  None when the device does not answer within ``window``."""
    from otel_bare_metal.collectors.hdhomerun.allowlist import resolve_within

    host, port = parse_address(address)
    try:
        started = time.monotonic()
        ip = resolve_within(host, port, window)  # a name is looked up within the window too
        window -= time.monotonic() - started
        found = discover(format_address(ip, port), attempts=1, window=max(0.01, min(window, 30.0)))
    except (OSError, ValueError):
        return None
    if not found:
        return None
    count = found[0].tuner_count
    return Discovered(f"{found[0].device_id:08X}", count if count and count <= MAX_TUNERS else None)


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]


@dataclass
class _State:
    down: bool = False
    reason: str = ""
    failures: int = 0
    retry_at: float = 0.0
    running: Future | None = None


class Fleet:
    """Configured devices, collected concurrently; ``read`` never raises, never waits for a
    device known to be down, and never takes much longer than the timeout or its deadline."""

    def __init__(self, addresses: list[str], timeout: float = 2.5, device_factory: Callable[[str, float], Device] = Device,
                 clock: Callable[[], float] = time.monotonic, retry_first: float = RETRY_FIRST,
                 retry_max: float = RETRY_MAX):
        self.timeout = timeout
        # One Device per device however often and however spelled it was given.
        self.devices = [device_factory(a, timeout) for a in dict.fromkeys(device_name(a) for a in addresses)]
        self._clock = clock
        self._retry = (retry_first, retry_max)
        self._state = {id(d): _State() for d in self.devices}
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(256, len(self.devices))), thread_name_prefix="hdhomerun")
        self._cond = threading.Condition()
        self._closed = False
        self._retrier: threading.Thread | None = None

    def read(self, deadline: float | None = None) -> FleetReading:
        now = self._clock()
        end = now + self.timeout if deadline is None else min(deadline, now + self.timeout)
        readings: dict[int, DeviceReading] = {}
        futures: dict[Future, Device] = {}
        with self._cond:
            for d in self.devices:
                st = self._state[id(d)]
                if st.down:  # known down: retried in the background, never waited for here
                    readings[id(d)] = DeviceReading(d.address, False, 0.0, error=st.reason)
                elif st.running is not None:
                    readings[id(d)] = DeviceReading(d.address, False, 0.0, error="previous collection still running")
                else:
                    st.running = future = self._pool.submit(d.read, end, False)
                    futures[future] = d
        for future, d in futures.items():
            future.add_done_callback(partial(self._finished, d))
        wait(futures, timeout=remaining(end, self._clock()) + HANDOVER)
        for future, d in futures.items():
            if future.done() and not future.cancelled():
                readings[id(d)] = future.result()
            else:  # the worker is still inside its own deadline; report it down now
                readings[id(d)] = DeviceReading(d.address, False, self._clock() - now, error="timeout")
        return FleetReading([readings[id(d)] for d in self.devices])

    def _finished(self, device: Device, future: Future) -> None:
        reading = None if future.cancelled() or future.exception() else future.result()
        with self._cond:
            st = self._state[id(device)]
            st.running = None
            if reading is not None and reading.up:
                st.down, st.failures, st.reason = False, 0, ""
            else:
                st.down = True
                st.reason = reading.error if reading is not None and reading.error else "collection failed"
                st.failures += 1
                first, most = self._retry
                st.retry_at = self._clock() + min(most, first * 2 ** min(st.failures - 1, 30))
                if self._retrier is None and not self._closed:
                    self._retrier = threading.Thread(target=self._retry_loop, name="hdhomerun-retry", daemon=True)
                    self._retrier.start()
            self._cond.notify_all()

    def _retry_loop(self) -> None:
        """Retry down devices when their backoff has passed, each at most once at a time."""
        with self._cond:
            while not self._closed:
                now = self._clock()
                next_at = math.inf
                for d in self.devices:
                    st = self._state[id(d)]
                    if not st.down or st.running is not None:
                        continue
                    if st.retry_at <= now:
                        st.running = future = self._pool.submit(d.read, None, True)
                        future.add_done_callback(partial(self._finished, d))
                    else:
                        next_at = min(next_at, st.retry_at)
                self._cond.wait(None if next_at == math.inf else next_at - now)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for d in self.devices:
            d.close()
