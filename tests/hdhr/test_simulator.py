"""The simulator itself: values, discover matching, faults at run time, clean shutdown."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from otel_bare_metal.hdhr import packet as pkt
from otel_bare_metal.hdhr.simulator import Faults, Simulator
from otel_bare_metal.hdhr.text import parse_tuner_debug


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_values_parse_and_drift() -> None:
    clock = FakeClock()
    sim = Simulator(tuners=4, clock=clock)  # values do not need a started simulator
    first = {n: parse_tuner_debug(sim.tuner_debug(n)) for n in range(4)}
    assert first[0].tun is not None and first[0].tun.channel is None
    for n in range(1, 4):
        d = first[n]
        assert d.tun is not None and d.tun.locked
        assert 70 <= d.tun.signal_strength <= 100  # type: ignore[operator]
        assert 70 <= d.tun.snr_quality <= 100  # type: ignore[operator]
        assert d.dev is not None and d.ts is not None and d.net is not None and d.cc is None
        assert "lock=none" not in sim.tuner_status(n)
        assert "tsid=" in sim.tuner_streaminfo(n)
    clock.now += 3600
    later = {n: parse_tuner_debug(sim.tuner_debug(n)) for n in range(4)}
    # counters only grow; at least one grows on some tuner; the signal drifts
    grew = False
    for n in range(1, 4):
        a, b = first[n], later[n]
        assert a.ts and b.ts and a.net and b.net and a.dev and b.dev
        for x, y in ((a.ts.te, b.ts.te), (a.ts.crc, b.ts.crc), (a.net.err, b.net.err), (a.dev.resync, b.dev.resync)):
            assert y >= x  # type: ignore[operator]
            grew = grew or y > x  # type: ignore[operator]
    assert grew
    assert any(first[n].tun != later[n].tun for n in range(1, 4))
    # drift is slow: one second later the signal moves by at most a point or two
    clock.now += 1
    for n in range(1, 4):
        now = parse_tuner_debug(sim.tuner_debug(n)).tun
        assert now is not None and later[n].tun is not None
        assert abs(now.signal_strength - later[n].tun.signal_strength) <= 2  # type: ignore[operator]


def test_cablecard_model() -> None:
    sim = Simulator(tuners=3, cablecard=True)
    assert sim.value("/sys/model") == "hdhomerun3_cablecard"
    for n in range(3):
        d = parse_tuner_debug(sim.tuner_debug(n))
        assert d.cc is not None and d.cc.bps == 2 * 38810720


def test_variables_listed() -> None:
    sim = Simulator(tuners=2)
    names = set(sim.variables())
    for name in ("/sys/model", "/sys/hwmodel", "/sys/version", "/sys/features", "/sys/copyright",
                 "/sys/debug"):
        assert name in names
    for item in ("debug", "status", "streaminfo", "vchannel", "target", "lockkey", "channelmap"):
        assert f"/tuner1/{item}" in names and f"/tuner2/{item}" not in names
    assert sim.value("/SYS/MODEL") == "hdhomerun4_atsc"
    assert sim.value("/tuner2/debug") is None and sim.value("/tuner0/nothing") is None


def test_answers() -> None:
    sim = Simulator(tuners=1)
    ok = sim.answer(pkt.getset_request("/sys/version"))
    assert ok is not None and ok.get(pkt.TAG_GETSET_VALUE) == b"20220203\0"
    unknown = sim.answer(pkt.getset_request("/sys/bogus"))
    assert unknown is not None and unknown.tags == ((pkt.TAG_ERROR_MESSAGE, b"ERROR: unknown getset variable\0"),)
    set_reply = sim.answer(pkt.getset_request("/tuner0/channel", "auto:33"))
    assert set_reply is not None and set_reply.get_string(pkt.TAG_ERROR_MESSAGE).startswith("ERROR: ")  # type: ignore[union-attr]
    assert sim.answer(pkt.Packet(pkt.TYPE_UPGRADE_REQUEST)) is None


def _udp_exchange(port: int, request: bytes, wait: float = 0.3) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(wait)
        s.sendto(request, ("127.0.0.1", port))
        try:
            return s.recv(2048)
        except socket.timeout:
            return None


def test_discover_matching(sim: Simulator) -> None:
    port = sim.address[1]
    assert _udp_exchange(port, pkt.encode(pkt.discover_request())) is not None
    assert _udp_exchange(port, pkt.encode(pkt.discover_request(pkt.DEVICE_TYPE_TUNER, 0x12345674))) is not None
    assert _udp_exchange(port, pkt.encode(pkt.discover_request(pkt.DEVICE_TYPE_STORAGE)), 0.15) is None
    assert _udp_exchange(port, pkt.encode(pkt.discover_request(device_id=0x101A2B3C)), 0.15) is None
    assert _udp_exchange(port, b"garbage", 0.15) is None
    sim.set_faults(discover=False)
    assert _udp_exchange(port, pkt.encode(pkt.discover_request()), 0.15) is None


def test_faults_are_switchable_at_run_time(sim: Simulator) -> None:
    assert sim.faults == Faults()
    sim.set_faults(latency=0.1)
    sim.set_faults(drop=True)
    assert sim.faults == Faults(latency=0.1, drop=True)
    sim.clear_faults()
    assert sim.faults == Faults()
    with pytest.raises(TypeError):
        sim.set_faults(nonsense=True)


def test_port_zero_binds_same_port_for_tcp_and_udp(sim: Simulator) -> None:
    host, port = sim.address
    assert port != 0
    with socket.create_connection((host, port), timeout=1):
        pass
    assert _udp_exchange(port, pkt.encode(pkt.discover_request())) is not None


def test_port_taken_is_an_error(sim: Simulator) -> None:
    with pytest.raises(OSError, match="cannot bind"):
        Simulator("127.0.0.1", sim.address[1]).start()


def test_stop_is_quick_with_busy_connections() -> None:
    sim = Simulator("127.0.0.1", 0, faults=Faults(drip=5)).start()
    clients = []
    try:
        for _ in range(3):
            c = socket.create_connection(sim.address, timeout=1)
            c.sendall(pkt.encode(pkt.getset_request("/sys/model")))
            clients.append(c)
        assert clients[0].recv(1)  # the drip started
        time.sleep(0.1)
        alive_before = {t.name for t in threading.enumerate()}
        assert "hdhr-sim-conn" in alive_before
        start = time.monotonic()
        sim.stop()
        assert time.monotonic() - start < 1.0
        assert not [t for t in threading.enumerate() if t.name.startswith("hdhr-sim")]
        # the server closed our connections
        for c in clients:
            c.settimeout(1)
            data = b"x"
            while data:
                data = c.recv(100)
    finally:
        for c in clients:
            c.close()
    # and the port is free again
    Simulator("127.0.0.1", sim.address[1]).start().stop()


def test_client_garbage_closes_connection(sim: Simulator) -> None:
    with socket.create_connection(sim.address, timeout=1) as c:
        c.sendall(pkt.encode(pkt.getset_request("/sys/model"))[:-1] + b"\0")  # bad CRC
        assert c.recv(100) == b""
