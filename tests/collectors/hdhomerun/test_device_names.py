"""One device, one name: the canonical ``ip:port`` (or the device id) on /metrics, /probe, in
logs and in the device caches, however it was written; IPv6 zone ids refused or canonical.
And what a device sends is checked: a negative counter is rejected for that sample, a discover
reply is not believed past the 16-tuner limit.  Everything on loopback."""

import logging
import socket

import pytest

from helpers import fetch, samples, scripted_device
from otel_bare_metal.app import App
from otel_bare_metal.collectors.hdhomerun import HDHomeRunOptions
from otel_bare_metal.config import Config
from otel_bare_metal.collectors.hdhomerun.allowlist import Allowlist
from otel_bare_metal.hdhr import packet as pkt
from otel_bare_metal.hdhr.simulator import Simulator
from otel_bare_metal.collectors.hdhomerun.fleet import Device, Fleet
from otel_bare_metal.telemetry.resource import build_resource

# A loopback address of this module's own, so the simulator may take the device port 65001
# (an address written without a port means port 65001) without meeting another test's.
HOST = "127.77.20.10"


def device_labels(body, name="hdhomerun_up"):
    return {dict(labels).get("hdhomerun_device") for (metric, labels), _ in samples(body.decode()).items() if metric == name}


def test_an_address_with_and_without_the_default_port_is_one_name():
    from otel_bare_metal.address import canonical_host_port

    assert canonical_host_port("10.0.0.5", 65001) == canonical_host_port("10.0.0.5:65001", 65001) == "10.0.0.5:65001"
    assert canonical_host_port("[0:0::1]", 65001) == canonical_host_port("::1", 65001) == "[::1]:65001"
    assert canonical_host_port("Tuner.LAN:7", 65001) == "tuner.lan:7"


def test_a_fleet_given_one_device_in_several_spellings_reads_it_once():
    fleet = Fleet(["10.0.0.5", "10.0.0.5:65001", " 10.0.0.5 "], timeout=0.1)
    try:
        assert [d.address for d in fleet.devices] == ["10.0.0.5:65001"]
    finally:
        fleet.close()


def test_metrics_and_probe_give_one_device_one_label_value():
    with Simulator(HOST, 65001, tuners=1):
        exporter = App(Config(listen_address="127.0.0.1:0", collectors={"hdhomerun": True},
                              options={"hdhomerun": HDHomeRunOptions(devices=(HOST,))}),
                       resource=build_resource({})).start()
        try:
            base = f"http://127.0.0.1:{exporter.server.port}"
            status, _, body = fetch(f"{base}/metrics")
            assert status == 200 and device_labels(body) == {f"{HOST}:65001"}
            for target in (HOST, f"{HOST}:65001"):
                status, _, body = fetch(f"{base}/probe?target={target}")
                assert status == 200 and device_labels(body) == {f"{HOST}:65001"}, target
            assert len(exporter.collector_routes["/probe"].handler.targets) == 1
        finally:
            exporter.close()


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_zone_ids_on_one_device_are_refused_not_new_entries():
    with Simulator("::1", 0, tuners=1) as sim:
        port = sim.address[1]
        exporter = App(Config(listen_address="127.0.0.1:0", collectors={},
                              options={"hdhomerun": HDHomeRunOptions(allow_targets=("[::1]:*",))}),
                       resource=build_resource({}), collectors=[]).start()
        try:
            base = f"http://127.0.0.1:{exporter.server.port}"
            status, _, body = fetch(f"{base}/probe?target=[::1]:{port}")
            assert status == 200 and device_labels(body) == {f"[::1]:{port}"}
            for zone in ("1", "999", "lo", "eth0"):
                status, _, _ = fetch(f"{base}/probe?target=[::1%25{zone}]:{port}")
                assert status == 400, zone  # a zone id on a non-link-local address means nothing
            assert len(exporter.collector_routes["/probe"].handler.targets) == 1
        finally:
            exporter.close()


def test_a_link_local_zone_is_spelled_by_its_interface_name():
    from otel_bare_metal.address import canonical_host

    index, name = socket.if_nameindex()[0]
    assert canonical_host(f"fe80::1%{index}") == canonical_host(f"fe80::1%{name}") == f"fe80::1%{name}"
    allow = Allowlist(["[fe80::]/10:*"])
    assert allow.check(f"[fe80::1%{index}]:7") == allow.check(f"[fe80::1%{name}]:7") == f"[fe80::1%{name}]:7"
    with pytest.raises(ValueError, match="no interface"):
        canonical_host("fe80::1%no-such-if0")
    with pytest.raises(ValueError, match="link-local"):
        Allowlist(["[::1]:*"]).check("[::1%1]:7")


def test_a_negative_counter_is_rejected_never_folded_into_the_total(caplog):
    device = scripted_device([10, -1000, 5, 7])
    with caplog.at_level(logging.WARNING, logger="otel_bare_metal"):
        totals = [device.read().tuners[0].ts.crc for _ in range(4)]
    # -1000 is no count: the total stays at 10; 5 after 10 is a reset (counts from 0); 7 adds 2.
    assert totals == [10, 10, 15, 17]
    assert any("negative counter" in r.getMessage() for r in caplog.records)


def test_a_negative_first_counter_gives_no_point():
    device = scripted_device([-3, 4])
    assert device.read().tuners[0].ts.crc is None
    assert device.read().tuners[0].ts.crc == 4


class Boastful(Simulator):
    """A device whose discover reply claims 255 tuners (it has 2)."""

    def _discover_reply(self, source):
        reply = super()._discover_reply(source)
        return pkt.Packet(reply.type, tuple((tag, bytes((255,)) if tag == pkt.TAG_TUNER_COUNT else value)
                                            for tag, value in reply.tags))


def test_a_discover_reply_past_the_tuner_limit_is_not_believed():
    with Boastful("127.0.0.1", 0, tuners=2) as sim:
        device = Device(sim.address_text, timeout=2.0)
        try:
            reading = device.read()
            assert reading.up and reading.info.tuner_count == 2 and sorted(reading.tuners) == [0, 1]
            served = sim.requests_served
            assert device.read().up and sim.requests_served - served == 2  # steady state: one request per tuner
        finally:
            device.close()
