"""HDHomeRun devices given by their 8-hex-digit id, as libhdhomerun and ``hdhomerun_config``
take them: validated by the check digit, found by a discover request carrying the id, found
again when the address changes.  Never a broadcast here: discovery goes to the addresses of
``--hdhomerun.discover-address`` on loopback, where simulators answer."""

import functools
import shutil
import subprocess
import time

import pytest

from helpers import exporter_command, fetch, samples
from otel_bare_metal.app import App
from otel_bare_metal.collectors.hdhomerun import HDHomeRunOptions
from otel_bare_metal.config import Config
from otel_bare_metal.hdhr.simulator import Simulator
from otel_bare_metal.telemetry.resource import build_resource

DEVICE_ID = 0x1050ABCE  # a valid id (1050ABCD, the chart's old example, fails the check digit)
OTHER_ID = 0x12345674
# Own loopback address for the simulators hdhomerun_config must find on its fixed port 65001.
HOST = "127.77.20.11"


def series(body, name):
    return {dict(labels).get("hdhomerun_device"): (dict(labels), v) for (metric, labels), v in samples(body.decode()).items()
            if metric == name}


def exporter(devices, discover, **options):
    options = HDHomeRunOptions(devices=tuple(devices), discover_addresses=tuple(discover), timeout=1.0, **options)
    return App(Config(listen_address="127.0.0.1:0", collectors={"hdhomerun": True}, options={"hdhomerun": options}),
               resource=build_resource({})).start()


def test_a_device_given_by_id_is_found_by_discovery_and_labelled_by_its_id():
    with Simulator("127.0.0.1", 0, tuners=2, device_id=OTHER_ID) as other, \
            Simulator("127.0.0.1", 0, tuners=2, device_id=DEVICE_ID) as sim:
        ex = exporter(["1050abce"], [other.address_text, sim.address_text])
        try:
            body = fetch(f"http://127.0.0.1:{ex.server.port}/metrics")[2]
            assert {k: v for k, (_, v) in series(body, "hdhomerun_up").items()} == {"1050ABCE": 1.0}
            labels, _ = series(body, "hdhomerun_device_info")["1050ABCE"]
            assert labels["hdhomerun_device_id"] == "1050ABCE"
        finally:
            ex.close()


def test_a_device_given_by_id_is_found_again_at_its_new_address():
    from otel_bare_metal.collectors.hdhomerun.fleet import Device, Fleet, locator

    with Simulator("127.0.0.1", 0, tuners=1, device_id=DEVICE_ID) as old, \
            Simulator("127.0.0.1", 0, tuners=1, device_id=OTHER_ID) as new:
        fleet = Fleet(["1050ABCE"], timeout=1.0, retry_first=0.05, retry_max=0.1,
                      device_factory=functools.partial(Device, locate=locator([old.address_text, new.address_text])))
        try:
            device = fleet.devices[0]
            assert fleet.read().devices[0].up and device.dial == old.address_text
            old.stop()
            new.device_id = DEVICE_ID  # the device came back elsewhere (a new DHCP lease)
            for _ in range(100):  # the background retry looks for it again, bounded
                reading = fleet.read().devices[0]
                if reading.up:
                    break
                time.sleep(0.05)
            assert reading.up and reading.address == "1050ABCE" and device.dial == new.address_text
        finally:
            fleet.close()


@pytest.mark.parametrize("text", ["1050ABCD", "1234567A", "FFFFFFFF"])
def test_an_invalid_device_id_is_one_line_and_exit_2(text):
    proc = subprocess.run([*exporter_command(), "--web.listen-address=127.0.0.1:0", f"--hdhomerun.device={text}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--hdhomerun.device" in proc.stderr and text in proc.stderr


def test_probe_accepts_a_configured_device_id_only():
    with Simulator("127.0.0.1", 0, tuners=1, device_id=DEVICE_ID) as sim, \
            Simulator("127.0.0.1", 0, tuners=1, device_id=OTHER_ID) as other:
        ex = exporter(["1050ABCE"], [sim.address_text, other.address_text], allow_targets=("10.0.0.0/8",))
        try:
            base = f"http://127.0.0.1:{ex.server.port}"
            status, _, body = fetch(f"{base}/probe?target=1050abce")
            assert status == 200 and {k: v for k, (_, v) in series(body, "hdhomerun_up").items()} == {"1050ABCE": 1.0}
            # An id that is not configured is refused, even when a device with it would answer:
            # /probe never searches the network for an id a stranger sends.
            assert fetch(f"{base}/probe?target=12345674")[0] == 403
            assert fetch(f"{base}/probe?target=1050ABCD")[0] == 400  # wrong check digit
        finally:
            ex.close()


@pytest.mark.skipif(shutil.which("hdhomerun_config") is None, reason="Debian's hdhomerun-config is not installed")
def test_the_id_hdhomerun_config_reports_is_the_device_we_find():
    """libhdhomerun's own discover (unicast to the address: never the id form, which broadcasts)
    names the device; configured by that id, the exporter finds the same device."""
    with Simulator(HOST, 65001, tuners=2, device_id=DEVICE_ID):
        out = subprocess.run(["hdhomerun_config", "discover", HOST], capture_output=True, text=True, timeout=10).stdout
        assert out.split()[:3] == ["hdhomerun", "device", "1050ABCE"], out
        ex = exporter([out.split()[2]], [HOST])
        try:
            body = fetch(f"http://127.0.0.1:{ex.server.port}/metrics")[2]
            labels, up = series(body, "hdhomerun_device_info")["1050ABCE"]
            assert up == 1.0 and labels["hdhomerun_device_id"] == "1050ABCE"
        finally:
            ex.close()


def test_a_discover_by_id_takes_only_that_device():
    from otel_bare_metal.hdhr import discover, parse_device_id

    with Simulator("127.0.0.1", 0, tuners=1, device_id=OTHER_ID) as other:
        assert discover(other.address_text, device_id=DEVICE_ID) == []  # it does not answer another id
        assert [d.device_id for d in discover(other.address_text, device_id=OTHER_ID)] == [OTHER_ID]
    assert parse_device_id("1050abce") == DEVICE_ID and parse_device_id("10.0.0.5") is None
    assert parse_device_id("tuner.lan") is None and parse_device_id("1050ABCE0") is None
