"""Discovery by unicast on loopback (never broadcast) and the device-id check digit."""

from __future__ import annotations

import socket
import time

import pytest

from otel_bare_metal.hdhr import packet as pkt
from otel_bare_metal.hdhr.discover import (
    DiscoveredDevice,
    device_id_valid,
    discover,
    parse_discover_reply,
)
from otel_bare_metal.hdhr.simulator import Simulator


@pytest.mark.parametrize("device_id", [0x12345674, 0xFFFFFFFF, "12345674", "ffffffff", "00000000"])
def test_valid_ids(device_id: int | str) -> None:
    assert device_id_valid(device_id)


@pytest.mark.parametrize(
    "device_id", [0x12345675, 0x12345670, 0x00000001, 0xFFFFFFFE, "1234567", "123456789", "1234567G", -1, 1 << 32]
)
def test_invalid_ids(device_id: int | str) -> None:
    assert not device_id_valid(device_id)


def test_exactly_one_check_digit_per_prefix() -> None:
    for prefix in (0x1234567, 0x1010101, 0xABCDEF0, 0x0000000):
        valid = [d for d in range(16) if device_id_valid(prefix << 4 | d)]
        assert len(valid) == 1, (hex(prefix), valid)


def test_discover_unicast_simulator(sim: Simulator) -> None:
    host, port = sim.address
    devices = discover(host, port=port)
    assert devices == [
        DiscoveredDevice(
            device_type=pkt.DEVICE_TYPE_TUNER,
            device_id=0x12345674,
            tuner_count=4,
            base_url="http://127.0.0.1:80",
            lineup_url="http://127.0.0.1:80/lineup.json",
            auth="simulatedAuthString0123456",
            ip="127.0.0.1",
            port=port,  # where the reply came from: the device's own port
        )
    ]
    assert devices[0].device_id_hex == "12345674" and devices[0].is_tuner
    assert device_id_valid(devices[0].device_id)


def test_discover_ipv6_loopback() -> None:
    try:
        sim = Simulator("::1", 0).start()
    except OSError as e:  # pragma: no cover
        pytest.skip(f"no IPv6 loopback: {e}")
    try:
        devices = discover("::1", port=sim.address[1])
        assert [d.ip for d in devices] == ["::1"]
        assert devices[0].base_url == "http://[::1]:80"
    finally:
        sim.stop()


def test_discover_nobody_there_is_bounded() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    try:  # bound but never answers
        start = time.monotonic()
        assert discover("127.0.0.1", port=port, attempts=2, window=0.1) == []
        elapsed = time.monotonic() - start
        assert 0.18 <= elapsed < 0.6
        requests = 0
        s.settimeout(0.1)
        try:
            while True:
                s.recv(100)
                requests += 1
        except socket.timeout:
            pass
        assert requests == 2
    finally:
        s.close()


def test_discover_ignores_junk_and_wrong_type() -> None:
    """A responder sending junk, then a get reply, then a valid discover reply."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    import threading

    def respond() -> None:
        data, source = s.recvfrom(100)
        assert pkt.decode(data).type == pkt.TYPE_DISCOVER_REQUEST
        s.sendto(b"junk", source)
        s.sendto(pkt.encode(pkt.Packet(pkt.TYPE_GETSET_REPLY)), source)
        s.sendto(
            pkt.encode(
                pkt.Packet(
                    pkt.TYPE_DISCOVER_REPLY,
                    ((pkt.TAG_DEVICE_TYPE, b"\0\0\0\x01"), (pkt.TAG_DEVICE_ID, b"\x10\x1a\x2b\x3c")),
                )
            ),
            source,
        )

    t = threading.Thread(target=respond)
    t.start()
    try:
        devices = discover("127.0.0.1", port=s.getsockname()[1], window=0.5)
    finally:
        t.join(3)
        s.close()
    assert [(d.device_id, d.tuner_count, d.base_url) for d in devices] == [(0x101A2B3C, None, None)]


def test_parse_discover_reply_errors() -> None:
    with pytest.raises(pkt.UnexpectedReplyError):
        parse_discover_reply(pkt.encode(pkt.Packet(pkt.TYPE_DISCOVER_REPLY)), "1.2.3.4")
    with pytest.raises(pkt.UnexpectedReplyError):
        parse_discover_reply(pkt.encode(pkt.discover_request()), "1.2.3.4")
    with pytest.raises(pkt.BadCRCError):
        parse_discover_reply(pkt.encode(pkt.discover_request())[:-1] + b"\0", "1.2.3.4")


def test_broadcast_needs_explicit_permission() -> None:
    with pytest.raises(ValueError, match="broadcast"):
        discover(None)


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        discover("127.0.0.1", attempts=0)
    with pytest.raises(ValueError):
        discover("127.0.0.1", window=0)
