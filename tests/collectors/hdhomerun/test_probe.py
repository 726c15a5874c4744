"""/probe rendering: one shared MeterProvider, a reader per cached target, targets in a bounded LRU.

The reference for "identical output" is the design it replaced: a MeterProvider and page of
the target's own, built here the way the exporter built it before.
"""

import gc
import threading
from dataclasses import replace

import pytest

from helpers import samples
from otel_bare_metal import __version__
from otel_bare_metal.collectors.hdhomerun.probe import ProbeTargets
from otel_bare_metal.exposition.prometheus import PrometheusPage
from otel_bare_metal.hdhr.simulator import Simulator
from otel_bare_metal.collectors.hdhomerun.fleet import Device, FleetReading
from otel_bare_metal.telemetry import SourceWorker, instrument
from otel_bare_metal.telemetry.provider import meter_provider
from otel_bare_metal.telemetry.resource import build_resource

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class FixedDevice:
    """A device that always returns one recorded reading (so two renders can be compared byte
    for byte: a live read's duration differs every time)."""

    timeout = 1.0

    def __init__(self, reading):
        self.address = reading.address
        self.reading = reading
        self.closed = False

    def read(self, deadline=None, verify=False):
        return self.reading

    def close(self):
        self.closed = True


@pytest.fixture(scope="module")
def recorded():
    """One real reading of a 4-tuner CableCARD simulator, and one of a dead address."""
    with Simulator("127.0.0.1", 0, tuners=4, cablecard=True) as sim:
        device = Device(sim.address_text, 1.0)
        live = device.read()
        device.close()
    assert live.up and len(live.tuners) == 4
    dead = Device("127.0.0.1:9", 0.2, discover=lambda a, w: None).read()
    assert not dead.up
    return live, dead


class OneDevice:
    """One device as a worker's source: the reference a probe's output is compared with."""

    def __init__(self, device):
        self.device = device

    def read(self):
        return FleetReading([self.device.read()])


def reference_render(device, naming, accept):
    """The reference: a MeterProvider, reader and instruments of the target's own, through the
    same path a configured device takes (instrument, a page on its collection)."""
    collector = SourceWorker("hdhomerun", OneDevice(device))
    page = PrometheusPage(target_info=False)
    provider = meter_provider(build_resource({}), [page.reader])
    page.collection = instrument(provider.get_meter("otel_bare_metal", __version__), [collector], self_monitoring=False,
                                 naming=naming, drop_attributes=frozenset({"hdhomerun.device"}))
    try:
        return page.render(accept)
    finally:
        provider.shutdown()


@pytest.mark.parametrize("naming", ["otel", "classic"])
@pytest.mark.parametrize("accept", [None, OPENMETRICS])
def test_output_is_byte_identical_to_a_provider_of_its_own(recorded, naming, accept):
    live, dead = recorded
    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, naming=naming,
                           device_factory=lambda a, t: FixedDevice(live if a == live.address else dead))
    try:
        for reading in (live, dead, live):  # and again after another target, on the same provider
            got = targets.get(reading.address).render(accept)
            assert got == reference_render(FixedDevice(reading), naming, accept)
        assert b"hdhomerun" in got[0]
    finally:
        targets.close()


def test_concurrent_probes_never_mix_targets(recorded):
    live, _ = recorded
    readings = {f"127.0.0.{n}:65001": replace(live, address=f"127.0.0.{n}:65001") for n in range(1, 9)}
    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, device_factory=lambda a, t: FixedDevice(readings[a]))
    failures = []

    def worker(address):
        for _ in range(60):
            body = targets.get(address).render(None)[0].decode()
            devices = {dict(labels).get("hdhomerun_device") for _, labels in samples(body)}
            if devices != {address}:
                failures.append((address, devices))
            if len(samples(body)) != len(samples(targets_reference[address])):
                failures.append((address, "series count"))

    targets_reference = {a: reference_render(FixedDevice(r), "otel", None)[0].decode() for a, r in readings.items()}
    _run_all([threading.Thread(target=worker, args=(a,)) for a in readings])
    targets.close()
    assert failures == []


def _run_all(threads: list[threading.Thread]) -> None:
    """Start the threads together and wait for all of them (each bounded: a hang fails the test)."""
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)


def _live_aggregations() -> int:
    """SDK aggregations (one per instrument and attribute set a reader has seen) alive now."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o).__name__ in ("_SumAggregation", "_LastValueAggregation"))


def test_past_targets_leave_no_sdk_storage(recorded):
    """A thousand distinct targets later, the SDK holds the aggregations of the most recent
    targets that keep a reader (one reading's series each), and none once the targets are
    closed: a reader, and its per-attribute-set storage, goes when its target falls out."""
    live, _ = recorded
    before = _live_aggregations()
    one = ProbeTargets(1.0, build_resource({}), page=PrometheusPage,
                       device_factory=lambda a, t: FixedDevice(replace(live, address=a)))
    for _ in range(3):
        assert one.get("127.0.0.1:65001").render(None)[0]
    per_target = _live_aggregations() - before
    one.close()
    assert per_target > 0 and _live_aggregations() == before
    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, max_targets=16, max_readers=4,
                           device_factory=lambda a, t: FixedDevice(replace(live, address=a)))
    try:
        for n in range(1000):
            address = f"127.0.{n // 250}.{n % 250 + 1}:65001"
            assert targets.get(address).render(None) == reference_render(FixedDevice(replace(live, address=address)), "otel", None)
        assert _live_aggregations() - before == 4 * per_target
        assert len(targets) == 16
    finally:
        targets.close()
    assert _live_aggregations() == before


def test_readers_taken_from_targets_in_use_stay_correct(recorded):
    """More targets than kept readers, probed from several threads at once: readers are taken
    from targets while they render; every page is still its own target's, whole, and closing
    leaves no SDK storage."""
    live, _ = recorded
    readings = {f"127.0.0.{n}:65001": replace(live, address=f"127.0.0.{n}:65001") for n in range(1, 9)}
    expected = {a: reference_render(FixedDevice(r), "otel", None) for a, r in readings.items()}
    before = _live_aggregations()
    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, max_readers=2,
                           device_factory=lambda a, t: FixedDevice(readings[a]))
    failures = []

    def worker(offset):
        addresses = list(readings)
        for i in range(80):
            address = addresses[(i + offset) % len(addresses)]
            try:
                got = targets.get(address).render(None)
            except Exception as e:  # noqa: BLE001  # any error is a failure of the test
                failures.append((address, repr(e)))
                continue
            if got != expected[address]:
                failures.append((address, "page"))

    _run_all([threading.Thread(target=worker, args=(k,)) for k in range(6)])
    assert failures == []
    targets.close()
    assert _live_aggregations() == before


def test_dead_targets_keep_no_reader(recorded):
    """A target whose device is down, and has never been read, gets a reader for its one probe:
    a caller cycling through dead addresses leaves no SDK storage behind."""
    _, dead = recorded
    before = _live_aggregations()
    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, max_targets=16,
                           device_factory=lambda a, t: FixedDevice(replace(dead, address=a)))
    try:
        for n in range(30):
            address = f"127.0.1.{n + 1}:9"
            assert targets.get(address).render(None) == reference_render(FixedDevice(replace(dead, address=address)), "otel", None)
            assert _live_aggregations() == before
    finally:
        targets.close()


def test_a_target_keeps_no_series_of_an_earlier_channel(recorded):
    """When a tuner changes channel (other attribute sets), the target's reader is replaced: the
    page is the new reading's alone and the SDK keeps no aggregation of the old channel."""
    live, _ = recorded
    retuned = replace(live, tuners={**live.tuners, 0: replace(
        live.tuners[0], tun=replace(live.tuners[0].tun, channel="auto:999000000"))})
    device = FixedDevice(live)
    before = _live_aggregations()
    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, device_factory=lambda a, t: device)
    try:
        targets.get(live.address).render(None)
        held = _live_aggregations() - before
        device.reading = retuned
        for _ in range(2):
            assert targets.get(live.address).render(None) == reference_render(FixedDevice(retuned), "otel", None)
        assert _live_aggregations() - before == held
    finally:
        targets.close()


def test_a_failed_collection_leaves_nothing_for_the_next_probe(recorded):
    """A collection cut short by an error leaves measurements in the reader's storage (an
    asynchronous counter adds them up): the target's reader is dropped with them, and the next
    probe's page is exactly its own reading's."""
    live, dead = recorded
    device = FixedDevice(live)
    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, device_factory=lambda a, t: device)
    try:
        target = targets.get(live.address)
        target.render(None)
        calls = []

        def failing(*args, **kwargs):  # the SDK's collection failing after some callbacks ran
            calls.append(1)
            raise RuntimeError("collection failed")

        page = target._target.page
        page._render = failing
        with pytest.raises(Exception):
            target.render(None)
        assert calls and target._target.page is None
        device.reading = dead
        assert target.render(None) == reference_render(FixedDevice(dead), "otel", None)
        device.reading = live
        assert target.render(None) == reference_render(FixedDevice(live), "otel", None)
    finally:
        targets.close()


def test_concurrent_probes_of_one_target_each_get_its_own_page(recorded):
    """Probes of one target at once: one renders on the target's reader, the others on readers
    of their own; every page is the reading's, whole, and no reader is left behind."""
    live, _ = recorded
    expected = reference_render(FixedDevice(live), "otel", None)
    before = _live_aggregations()
    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, device_factory=lambda a, t: FixedDevice(live))
    targets.get(live.address).render(None)
    held = _live_aggregations() - before
    failures = []

    def worker():
        for _ in range(40):
            got = targets.get(live.address).render(None)
            if got != expected:
                failures.append(got)

    _run_all([threading.Thread(target=worker) for _ in range(6)])
    assert failures == []
    assert _live_aggregations() - before == held
    targets.close()
    assert _live_aggregations() == before


def test_evicted_devices_are_closed_and_close_closes_the_rest(recorded):
    live, _ = recorded
    made = []

    def factory(address, timeout):
        made.append(FixedDevice(replace(live, address=address)))
        return made[-1]

    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, max_targets=2, device_factory=factory)
    for n in range(1, 5):
        targets.get(f"127.0.0.{n}:65001").render(None)
    assert [d.closed for d in made] == [True, True, False, False]
    targets.close()
    assert all(d.closed for d in made)


def test_a_device_that_raises_gives_an_empty_page_not_an_error():
    class Broken:
        address = "127.0.0.1:65001"

        def read(self):
            raise RuntimeError("boom")

        def close(self):
            pass

    targets = ProbeTargets(1.0, build_resource({}), page=PrometheusPage, device_factory=lambda a, t: Broken())
    try:
        body, content_type = targets.get("127.0.0.1:65001").render(None)
        assert b"hdhomerun_up" not in body and content_type.startswith("text/plain")
    finally:
        targets.close()
