"""The HDHomeRun fleet against simulated devices on loopback: a dead device is waited for
once, retried in the background, and back when it answers; a slow link keeps what it has
learned; steady state is one request per tuner; device counters never go backwards."""

import time

import pytest

from helpers import scripted_device
from otel_bare_metal.hdhr import MAX_TUNERS
from otel_bare_metal.hdhr.simulator import Faults, Simulator
from otel_bare_metal.collectors.hdhomerun.fleet import Device, Fleet


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def by_address(reading):
    return {d.address: d for d in reading.devices}


def test_a_dead_device_is_not_waited_for_after_its_first_failure():
    with Simulator("127.0.0.1", 0, tuners=2) as good, Simulator("127.0.0.1", 0, tuners=2, faults=Faults(drop=True)) as dead:
        fleet = Fleet([good.address_text, dead.address_text], timeout=0.5, retry_first=60)
        try:
            first = by_address(fleet.read())
            assert first[good.address_text].up and not first[dead.address_text].up
            dead_device = next(d for d in fleet.devices if d.address == dead.address_text)
            asked = dead_device.requests
            for _ in range(3):
                later = by_address(fleet.read())
                assert later[good.address_text].up
                down = later[dead.address_text]
                assert not down.up and down.duration == 0.0 and "timed out" in down.error
            assert dead_device.requests == asked, "a scrape asked the dead device again"
        finally:
            fleet.close()


def test_a_device_that_answers_again_is_back_on_the_next_scrape():
    with Simulator("127.0.0.1", 0, tuners=2, faults=Faults(drop=True)) as sim:
        fleet = Fleet([sim.address_text], timeout=0.5, retry_first=0.05, retry_max=0.2)
        try:
            assert not fleet.read().devices[0].up
            sim.clear_faults()
            # the background retry brings it back; no scrape waits for that
            assert wait_until(lambda: not fleet._state[id(fleet.devices[0])].down)
            reading = fleet.read().devices[0]
            assert reading.up and len(reading.tuners) == 2
        finally:
            fleet.close()


def test_a_slow_link_keeps_what_it_learned_and_comes_up():
    """Every reply takes 0.2 s and the timeout is 1 s: the facts (3 requests) and 4 tuners do
    not fit into one collection, so the first fails; nothing learned is thrown away, and the
    device is up by the next collection (before: down forever, starting from zero each time)."""
    with Simulator("127.0.0.1", 0, tuners=4, faults=Faults(latency=0.2)) as sim:
        fleet = Fleet([sim.address_text], timeout=1.0, retry_first=0.05)
        try:
            assert not fleet.read().devices[0].up
            device = fleet.devices[0]
            assert device.info is not None and device.info.tuner_count == 4
            assert wait_until(lambda: not fleet._state[id(device)].down)
            before = sim.requests_served
            reading = fleet.read().devices[0]
            assert reading.up and reading.info.model and len(reading.tuners) == 4
            assert sim.requests_served - before == 4  # the facts were not asked again
        finally:
            fleet.close()


def test_discover_gives_the_device_id_and_tuner_count():
    with Simulator("127.0.0.1", 0, tuners=3) as sim:
        device = Device(sim.address_text, timeout=2.0)
        try:
            reading = device.read()
            assert reading.up and reading.info.device_id == f"{sim.device_id:08X}" and reading.info.tuner_count == 3
            assert device.requests == 3 + 3  # model, hwmodel, version; one per tuner; no count probe
            device.read()
            assert device.requests == 6 + 3  # steady state: exactly one request per tuner
        finally:
            device.close()


def test_without_a_discover_reply_the_tuner_count_is_probed():
    with Simulator("127.0.0.1", 0, tuners=2, faults=Faults(discover=False)) as sim:
        device = Device(sim.address_text, timeout=2.0, discover=lambda address, window: None)
        try:
            reading = device.read()
            assert reading.up and reading.info.tuner_count == 2 and reading.info.device_id == ""
        finally:
            device.close()


def test_the_tuner_count_probe_is_kept_zero_and_capped():
    """The one tuner-count probe: /tuner0/debug upwards until "unknown getset variable", read
    once and kept; 0 tuners is an answer; it never asks past MAX_TUNERS."""
    no_discover = dict(timeout=2.0, discover=lambda address, window: None)
    with Simulator("127.0.0.1", 0, tuners=3, faults=Faults(discover=False)) as sim:
        device = Device(sim.address_text, **no_discover)
        try:
            assert device.read().info.tuner_count == 3
            served = sim.requests_served
            assert served == 3 + 4 + 3  # model, hwmodel, version; tuner0..2 and the failing tuner3; 3 debug reads
            assert device.read().info.tuner_count == 3
            assert sim.requests_served == served + 3  # kept: only the tuners are read again
        finally:
            device.close()
    with Simulator("127.0.0.1", 0, tuners=0, faults=Faults(discover=False)) as sim:
        device = Device(sim.address_text, **no_discover)
        try:
            assert device.read().info.tuner_count == 0
        finally:
            device.close()
    with Simulator("127.0.0.1", 0, tuners=MAX_TUNERS, faults=Faults(discover=False)) as sim:
        device = Device(sim.address_text, **no_discover)
        try:
            assert device.read().info.tuner_count == MAX_TUNERS
            assert sim.requests_served == 3 + MAX_TUNERS + MAX_TUNERS  # bounded: never probes beyond 16
        finally:
            device.close()


def test_device_counters_never_go_backwards():
    """A tuner resets its counters on a channel change: the export keeps a running total."""
    device = scripted_device([5, 7, 2, 3, 3])
    totals = [device.read().tuners[0].ts.crc for _ in range(5)]
    assert totals == [5, 7, 9, 10, 10]


@pytest.mark.parametrize("timeout", [0.3])
def test_a_fleet_read_is_bounded_by_the_deadline_it_is_given(timeout):
    """The collection passes its deadline down: a first collection never outlives it."""
    with Simulator("127.0.0.1", 0, tuners=2, faults=Faults(drop=True)) as dead:
        fleet = Fleet([dead.address_text], timeout=30.0, retry_first=60)
        try:
            started = time.monotonic()
            reading = fleet.read(deadline=started + timeout).devices[0]
            assert not reading.up
            assert time.monotonic() - started < 10  # not the device's 30 s timeout
        finally:
            fleet.close()


def test_after_an_outage_a_probe_reads_the_facts_again():
    """The device behind an address may have been replaced or upgraded while it was away."""
    with Simulator("127.0.0.1", 0, tuners=2) as sim:
        device = Device(sim.address_text, timeout=1.0)
        try:
            assert device.read().up
            sim.set_faults(drop=True)
            assert not device.read().up
            sim.clear_faults()
            asked = device.requests
            assert device.read().up
            assert device.requests - asked == 3 + 2  # model, hwmodel, version again, then the tuners
        finally:
            device.close()
