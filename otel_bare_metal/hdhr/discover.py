"""UDP discovery of HDHomeRun devices (port 65001).

A discover request (type 0x0002) carries a device-type and a device-id tag, normally both
wildcards.  Each device answers (type 0x0003) to the sender's address and port with its
type, id, tuner count, auth string, base URL and lineup URL; its IP is the reply's source.

With a target address the request is *unicast*.  Only when no address is given — and the
caller explicitly allows it — is it broadcast to 255.255.255.255; the socket only gets
``SO_BROADCAST`` in that case, so the unicast path cannot broadcast even by mistake.
Like libhdhomerun: 2 attempts with a 200 ms window each.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

from . import packet as pkt
from otel_bare_metal.address import parse_host_port

from .packet import DEFAULT_PORT, ProtocolError

__all__ = [
    "DiscoveredDevice",
    "discover",
    "device_id_valid",
    "parse_device_id",
    "parse_discover_reply",
    "BROADCAST_ADDRESS",
    "DEFAULT_ATTEMPTS",
    "DEFAULT_WINDOW",
]

BROADCAST_ADDRESS = "255.255.255.255"
DEFAULT_ATTEMPTS = 2
DEFAULT_WINDOW = 0.2

# Check-digit table applied to the odd nibbles (n1, n3, n5, n7) of a device id.
_CHECK_TABLE = (0xA, 0x5, 0xF, 0x6, 0x7, 0xC, 0x1, 0xB, 0x9, 0x2, 0x8, 0xD, 0x4, 0x3, 0xE, 0x0)


def device_id_valid(device_id: int | str) -> bool:
    """True if the id's check digit is right (``12345674`` and ``FFFFFFFF`` are valid).

    Nibbles n0 (least significant) … n7: the odd ones go through a fixed table, the even
    ones are taken raw, and the XOR of all eight must be 0.  Accepts an int or 8 hex digits.
    """
    if isinstance(device_id, str):
        text = device_id.strip()
        if len(text) != 8 or any(c not in "0123456789abcdefABCDEF" for c in text):
            return False
        value = int(text, 16)
    else:
        value = device_id
    if not 0 <= value <= 0xFFFFFFFF:
        return False
    check = 0
    for i in range(8):
        nibble = (value >> (4 * i)) & 0xF
        check ^= _CHECK_TABLE[nibble] if i % 2 else nibble
    return check == 0


def parse_device_id(text: str) -> int | None:
    """A device id written as libhdhomerun and ``hdhomerun_config`` take it: exactly 8 hex
    digits, either case (``1050ABCE``).  None when ``text`` is not 8 hex digits (an address or
    a name); :class:`ValueError` when it is, but its check digit is wrong (``hdhomerun_config``
    answers "invalid device id" to those too)."""
    value = text.strip()
    if len(value) != 8 or any(c not in "0123456789abcdefABCDEF" for c in value):
        return None
    if not device_id_valid(value):
        raise ValueError(f"invalid HDHomeRun device id {value!r}: its check digit is wrong")
    if int(value, 16) == pkt.DEVICE_ID_WILDCARD:
        raise ValueError(f"HDHomeRun device id {value!r} is the wildcard: it names no one device")
    return int(value, 16)


@dataclass(frozen=True)
class DiscoveredDevice:
    """One discover reply.  ``ip`` and ``port`` are the address the reply came from (a device
    answers from its control port, 65001)."""

    device_type: int
    device_id: int
    tuner_count: int | None
    base_url: str | None
    lineup_url: str | None
    auth: str | None
    ip: str
    port: int = DEFAULT_PORT

    @property
    def device_id_hex(self) -> str:
        """The id as hdhomerun_config prints it: 8 upper-case hex digits."""
        return f"{self.device_id:08X}"

    @property
    def is_tuner(self) -> bool:
        return self.device_type == pkt.DEVICE_TYPE_TUNER


def parse_discover_reply(frame: bytes, ip: str, port: int = DEFAULT_PORT) -> DiscoveredDevice:
    """Decode one discover reply datagram; raises :class:`ProtocolError` if it is not one."""
    reply = pkt.decode(frame)
    if reply.type != pkt.TYPE_DISCOVER_REPLY:
        raise pkt.UnexpectedReplyError(f"discover reply has type 0x{reply.type:04x}")
    device_type = reply.get_u32(pkt.TAG_DEVICE_TYPE)
    device_id = reply.get_u32(pkt.TAG_DEVICE_ID)
    if device_type is None or device_id is None:
        raise pkt.UnexpectedReplyError("discover reply lacks a 4-byte device type or id")
    return DiscoveredDevice(
        device_type=device_type,
        device_id=device_id,
        tuner_count=reply.get_u8(pkt.TAG_TUNER_COUNT),
        base_url=reply.get_string(pkt.TAG_BASE_URL),
        lineup_url=reply.get_string(pkt.TAG_LINEUP_URL),
        auth=reply.get_string(pkt.TAG_DEVICE_AUTH_STR),
        ip=ip,
        port=port,
    )


def discover(
    address: str | None = None,
    *,
    port: int = DEFAULT_PORT,
    attempts: int = DEFAULT_ATTEMPTS,
    window: float = DEFAULT_WINDOW,
    allow_broadcast: bool = False,
    device_id: int = pkt.DEVICE_ID_WILDCARD,
) -> list[DiscoveredDevice]:
    """Find devices: unicast to ``address`` (``host``, ``host:port``, ``[v6]:port``; ``port``
    is the default), or broadcast when it is ``None``.

    Broadcasting needs ``allow_broadcast=True`` (the command-line tool, and the exporter's
    discovery when no ``--hdhomerun.discover-address`` is given).  ``device_id`` asks only the
    device with that id to answer (libhdhomerun's discover by id); replies from another id are
    ignored.
    Sends at most ``attempts`` requests and listens ``window`` seconds after each; a
    unicast search stops at the first answer.  Malformed replies are ignored.  Returns
    devices in the order they answered, without duplicates.  Network errors (unreachable
    address, unresolvable name) raise :class:`OSError`.
    """
    if attempts < 1 or attempts > 10:
        raise ValueError("attempts must be between 1 and 10")
    if window <= 0 or window > 30:
        raise ValueError("window must be in (0, 30] seconds")
    broadcast = address is None
    if broadcast and not allow_broadcast:
        raise ValueError("no address given and broadcasting not allowed")
    family: int
    target: tuple[Any, ...]
    if broadcast:
        family, target = socket.AF_INET, (BROADCAST_ADDRESS, port)
    else:
        assert address is not None
        host, port = parse_host_port(address, port)
        found = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        if not found:  # pragma: no cover - getaddrinfo raises instead
            raise OSError(f"cannot resolve {address!r}")
        family, _, _, _, target = found[0]
    request = pkt.encode(pkt.discover_request(device_id=device_id))
    devices: list[DiscoveredDevice] = []
    seen: set[tuple[int, str]] = set()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(attempts):
            sock.sendto(request, target)
            end = time.monotonic() + window
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    data, source = sock.recvfrom(4096)
                except socket.timeout:
                    break
                except ConnectionRefusedError:
                    # ICMP port unreachable from a unicast target: nobody listens there.
                    break
                try:
                    device = parse_discover_reply(data, source[0], source[1])
                except ProtocolError:
                    continue
                if device_id != pkt.DEVICE_ID_WILDCARD and device.device_id != device_id:
                    continue
                key = (device.device_id, device.ip)
                if key not in seen:
                    seen.add(key)
                    devices.append(device)
                if not broadcast:
                    break  # one device at a unicast address: no need to sit out the window
            if devices and not broadcast:
                break
    return devices
