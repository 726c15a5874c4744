"""/probe dials exactly the address its allowlist checked (no DNS rebinding), and one device
is one cache entry and one connection however the target is spelled.

The name resolution is an injected resolver (a rebinding DNS server in a function): the first
answer is an allowed address, every later one a forbidden address where a listener counts
connections.  Everything runs on loopback.
"""

import socket
import threading

import pytest

from helpers import fetch, samples
from otel_bare_metal.app import App
from otel_bare_metal.collectors.hdhomerun import HDHomeRunOptions
from otel_bare_metal.config import Config
from otel_bare_metal.collectors.hdhomerun.allowlist import Allowlist, TargetNotAllowed
from otel_bare_metal.hdhr.simulator import Simulator
from otel_bare_metal.telemetry.resource import build_resource


class CountingListener:
    """A TCP and UDP listener that only counts who reaches it (the 'forbidden' service)."""

    def __init__(self, host, port):
        self.connections = 0
        self.datagrams = 0
        self.tcp = socket.create_server((host, port))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, port))
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True), threading.Thread(target=self._recv, daemon=True)]
        for t in self._threads:
            t.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def _recv(self):
        while not self._stop.is_set():
            try:
                self.udp.recvfrom(4096)
            except OSError:
                continue
            self.datagrams += 1

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.tcp.close()
        self.udp.close()


class Rebinding:
    """First answer ``first``, every later one ``then``; counts lookups."""

    def __init__(self, first, then):
        self.answers = [first]
        self.then = then
        self.lookups = 0

    def __call__(self, host, port):
        self.lookups += 1
        return [self.answers.pop(0) if self.answers else self.then]


@pytest.fixture
def exporter():
    exporter = App(Config(listen_address="127.0.0.1:0", collectors={}), resource=build_resource({}), collectors=[]).start()
    yield exporter, f"http://127.0.0.1:{exporter.server.port}"
    exporter.close()


def up(body):
    return {dict(labels).get("hdhomerun_device"): v for (name, labels), v in samples(body.decode()).items() if name == "hdhomerun_up"}


def test_a_rebinding_name_is_dialled_at_the_checked_address_only(exporter):
    exporter, base = exporter
    with Simulator("127.0.0.2", 0, tuners=1) as sim:
        port = sim.address[1]
        forbidden = CountingListener("127.0.0.3", port)
        try:
            resolver = Rebinding("127.0.0.2", "127.0.0.3")
            exporter.collector_routes["/probe"].handler.allowlist = Allowlist(["127.0.0.2/32:*"], resolver=resolver)
            target = f"rebind.test:{port}"
            status, _, body = fetch(f"{base}/probe?target={target}")
            # The probe reached the device the allowlist saw (before: the client resolved the
            # name again and the probe went elsewhere or nowhere).
            assert status == 200 and up(body) == {f"127.0.0.2:{port}": 1.0}
            statuses = [fetch(f"{base}/probe?target={target}")[0] for _ in range(2)]
            assert statuses == [403, 403]  # the name now answers a forbidden address
            assert forbidden.connections == 0 and forbidden.datagrams == 0
            assert resolver.lookups == 3  # once per probe: nothing resolves the name a second time
        finally:
            forbidden.close()


def test_one_device_is_one_entry_and_one_connection_however_spelled(exporter):
    exporter, base = exporter
    with Simulator("127.0.0.2", 0, tuners=1) as sim:
        port = sim.address[1]
        exporter.collector_routes["/probe"].handler.allowlist = Allowlist(["127.0.0.0/8:*"], resolver=lambda host, p: ["127.0.0.2"])
        spellings = [f"127.0.0.2:{port}", f"%20127.0.0.2:{port}%20", f"sim.test:{port}", f"SIM.TEST:{port}"]
        for target in spellings:
            status, _, body = fetch(f"{base}/probe?target={target}")
            assert status == 200 and up(body) == {f"127.0.0.2:{port}": 1.0}, target
        assert len(exporter.collector_routes["/probe"].handler.targets) == 1


def test_a_probe_honours_the_scrape_timeout_header():
    """A dead device is given the scrape's budget, not the (here 30 s) device timeout."""
    exporter = App(Config(listen_address="127.0.0.1:0", collectors={},
                               options={"hdhomerun": HDHomeRunOptions(timeout=30.0, allow_targets=("127.0.0.0/8:*",))}),
                        resource=build_resource({}), collectors=[]).start()
    try:
        with Simulator("127.0.0.1", 0, tuners=1) as sim:
            sim.set_faults(drop=True)
            url = f"http://127.0.0.1:{exporter.server.port}/probe?target={sim.address_text}"
            status, _, body = fetch(url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=10)
            assert status == 200 and up(body) == {sim.address_text: 0.0}
    finally:
        exporter.close()


def test_check_returns_the_canonical_address_to_dial():
    allow = Allowlist(["127.0.0.0/8:*", "[::1]:*"], resolver=lambda host, port: ["127.0.0.9", "127.0.0.10"])
    assert allow.check("127.0.0.2") == "127.0.0.2:65001"
    assert allow.check(" 127.0.0.2:65001 ") == "127.0.0.2:65001"
    assert allow.check("[::1]:7") == "[::1]:7"
    assert allow.check("::1") == "[::1]:65001"
    assert allow.check("tuner.test:5") == "127.0.0.9:5"


def test_every_resolved_address_must_be_allowed():
    allow = Allowlist(["127.0.0.0/8:*"], resolver=lambda host, port: ["127.0.0.9", "10.0.0.1"])
    with pytest.raises(TargetNotAllowed, match="10.0.0.1"):
        allow.check("mixed.test")
