"""Frame codec for the HDHomeRun control and discover protocol.

Every message on TCP (get/set) and UDP (discover) port 65001 is one *frame*::

    offset  size  field
    0       2     packet type          (big-endian)
    2       2     payload length N     (big-endian)
    4       N     payload: TLVs
    4+N     4     CRC-32 of bytes 0..4+N   (LITTLE-endian; ordinary IEEE CRC, zlib.crc32)

Each TLV is a one-byte tag, a length and the value.  The length takes one byte when it
is <= 127; otherwise two bytes ``0x80 | (n & 0x7F)``, ``n >> 7`` (so at most 32767).

This module only turns bytes into :class:`Packet` values and back.  It knows nothing of
sockets; :func:`read_frame` takes a ``recv`` callable so the caller owns timeouts.
Unknown tags are preserved as raw bytes (never an error).  Every failure raises a
subclass of :class:`ProtocolError`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

__all__ = [
    "HDHomeRunError",
    "ProtocolError",
    "ShortFrameError",
    "BadCRCError",
    "BadLengthError",
    "FrameTooLargeError",
    "UnexpectedReplyError",
    "Packet",
    "encode",
    "decode",
    "encode_tlv_length",
    "frame_length",
    "read_frame",
    "string_value",
    "getset_request",
    "discover_request",
    "TYPE_DISCOVER_REQUEST",
    "TYPE_DISCOVER_REPLY",
    "TYPE_GETSET_REQUEST",
    "TYPE_GETSET_REPLY",
    "TYPE_UPGRADE_REQUEST",
    "TYPE_UPGRADE_REPLY",
    "TAG_DEVICE_TYPE",
    "TAG_DEVICE_ID",
    "TAG_GETSET_NAME",
    "TAG_GETSET_VALUE",
    "TAG_ERROR_MESSAGE",
    "TAG_TUNER_COUNT",
    "TAG_GETSET_LOCKKEY",
    "TAG_LINEUP_URL",
    "TAG_STORAGE_URL",
    "TAG_DEVICE_AUTH_BIN",
    "TAG_BASE_URL",
    "TAG_DEVICE_AUTH_STR",
    "TAG_STORAGE_ID",
    "TAG_MULTI_TYPE",
    "DEVICE_TYPE_TUNER",
    "DEVICE_TYPE_STORAGE",
    "DEVICE_TYPE_WILDCARD",
    "DEVICE_ID_WILDCARD",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "MAX_DECODE_FRAME",
    "MAX_TLV_LENGTH",
    "HEADER_SIZE",
    "CRC_SIZE",
]

# Packet types (reply = request + 1).
#: TCP (control) and UDP (discover) port of every HDHomeRun device.
DEFAULT_PORT = 65001
#: The most tuners a device is taken to have: a tuner-count probe stops there, the simulator and
#: the tools refuse more (no HDHomeRun model has more than 6).
MAX_TUNERS = 16

TYPE_DISCOVER_REQUEST = 0x0002
TYPE_DISCOVER_REPLY = 0x0003
TYPE_GETSET_REQUEST = 0x0004
TYPE_GETSET_REPLY = 0x0005
TYPE_UPGRADE_REQUEST = 0x0006  # never sent by this package
TYPE_UPGRADE_REPLY = 0x0007

# Tags.
TAG_DEVICE_TYPE = 0x01  # u32 BE
TAG_DEVICE_ID = 0x02  # u32 BE
TAG_GETSET_NAME = 0x03  # string, NUL-terminated in requests
TAG_GETSET_VALUE = 0x04  # string
TAG_ERROR_MESSAGE = 0x05  # string, "ERROR: ..."
TAG_TUNER_COUNT = 0x10  # u8
TAG_GETSET_LOCKKEY = 0x15  # u32 BE
TAG_LINEUP_URL = 0x27
TAG_STORAGE_URL = 0x28
TAG_DEVICE_AUTH_BIN = 0x29  # 18 raw bytes (legacy)
TAG_BASE_URL = 0x2A
TAG_DEVICE_AUTH_STR = 0x2B
TAG_STORAGE_ID = 0x2C
TAG_MULTI_TYPE = 0x2D

DEVICE_TYPE_TUNER = 0x00000001
DEVICE_TYPE_STORAGE = 0x00000005
DEVICE_TYPE_WILDCARD = 0xFFFFFFFF
DEVICE_ID_WILDCARD = 0xFFFFFFFF

HEADER_SIZE = 4
CRC_SIZE = 4
#: Largest frame a device accepts (libhdhomerun's limit); enforced when encoding.
MAX_FRAME = 1460
MAX_PAYLOAD = MAX_FRAME - HEADER_SIZE - CRC_SIZE  # 1452
#: Largest frame accepted when decoding.  libhdhomerun's own receive buffer fails above
#: ~2 KB; we allow a little more, but refuse a header announcing up to 64 KB of payload
#: so a garbled header fails at once instead of waiting for bytes that never come.
MAX_DECODE_FRAME = 4096
MAX_TLV_LENGTH = 32767

_HEADER = struct.Struct(">HH")
_CRC = struct.Struct("<I")


class HDHomeRunError(Exception):
    """Base class of every error raised by the ``otel_bare_metal.hdhr`` package."""


class ProtocolError(HDHomeRunError):
    """The bytes are not a valid frame, or not the frame that was expected."""


class ShortFrameError(ProtocolError):
    """Fewer bytes than the header (or the header's length field) requires."""


class BadCRCError(ProtocolError):
    """The CRC-32 trailer does not match the header and payload."""


class BadLengthError(ProtocolError):
    """A length field is inconsistent: trailing bytes, or a TLV running past the payload."""


class FrameTooLargeError(ProtocolError):
    """The frame exceeds the protocol's size limit (or a value exceeds 32767 bytes)."""


class UnexpectedReplyError(ProtocolError):
    """A well-formed frame that is not a valid answer to the request (wrong type, missing tag)."""


@dataclass(frozen=True)
class Packet:
    """One decoded frame: its type and its TLVs in wire order.

    ``tags`` keeps every TLV, including unknown tags and repeated tags, as raw bytes.
    """

    type: int
    tags: tuple[tuple[int, bytes], ...] = field(default=())

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0xFFFF:
            raise ValueError(f"packet type {self.type} out of range 0..65535")
        for tag, value in self.tags:
            if not 0 <= tag <= 0xFF:
                raise ValueError(f"tag {tag} out of range 0..255")
            if not isinstance(value, (bytes, bytearray)):
                raise TypeError(f"tag 0x{tag:02x} value must be bytes, not {type(value).__name__}")

    def get(self, tag: int) -> bytes | None:
        """The value of the first TLV with this tag, or ``None``."""
        for t, value in self.tags:
            if t == tag:
                return value
        return None

    def get_all(self, tag: int) -> list[bytes]:
        """The values of every TLV with this tag, in wire order."""
        return [value for t, value in self.tags if t == tag]

    def get_u32(self, tag: int) -> int | None:
        """The first TLV with this tag as a big-endian u32, or ``None`` if absent or not 4 bytes."""
        value = self.get(tag)
        if value is None or len(value) != 4:
            return None
        return int.from_bytes(value, "big")

    def get_u8(self, tag: int) -> int | None:
        """The first TLV with this tag as a u8, or ``None`` if absent or not 1 byte."""
        value = self.get(tag)
        if value is None or len(value) != 1:
            return None
        return value[0]

    def get_string(self, tag: int) -> str | None:
        """The first TLV with this tag as text (see :func:`string_value`), or ``None``."""
        value = self.get(tag)
        return None if value is None else string_value(value)


def string_value(raw: bytes) -> str:
    """Text of a string TLV: cut at the first NUL if there is one, UTF-8 with replacement."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        raw = raw[:nul]
    return bytes(raw).decode("utf-8", errors="replace")


def encode_tlv_length(n: int) -> bytes:
    """The TLV length field: one byte up to 127, else ``0x80 | (n & 0x7F), n >> 7``."""
    if n < 0:
        raise ValueError("negative length")
    if n <= 0x7F:
        return bytes((n,))
    if n > MAX_TLV_LENGTH:
        raise FrameTooLargeError(f"TLV value of {n} bytes exceeds {MAX_TLV_LENGTH}")
    return bytes((0x80 | (n & 0x7F), n >> 7))


def encode(packet: Packet, *, max_frame: int = MAX_FRAME) -> bytes:
    """Serialise a packet to one frame (header, TLVs, little-endian CRC-32).

    Raises :class:`FrameTooLargeError` when the frame would exceed ``max_frame`` bytes
    (1460, the device's limit, by default).
    """
    payload = bytearray()
    for tag, value in packet.tags:
        payload.append(tag)
        payload += encode_tlv_length(len(value))
        payload += value
    total = HEADER_SIZE + len(payload) + CRC_SIZE
    if total > max_frame or len(payload) > 0xFFFF:
        raise FrameTooLargeError(f"frame of {total} bytes exceeds the {max_frame}-byte limit")
    body = _HEADER.pack(packet.type, len(payload)) + bytes(payload)
    return body + _CRC.pack(zlib.crc32(body) & 0xFFFFFFFF)


def frame_length(header: bytes, *, max_frame: int = MAX_DECODE_FRAME) -> int:
    """Total frame size (header + payload + CRC) announced by the first 4 bytes.

    Raises :class:`ShortFrameError` if fewer than 4 bytes are given and
    :class:`FrameTooLargeError` if the announced frame exceeds ``max_frame``.
    """
    if len(header) < HEADER_SIZE:
        raise ShortFrameError(f"frame header needs {HEADER_SIZE} bytes, got {len(header)}")
    n = int.from_bytes(header[2:4], "big")
    total = HEADER_SIZE + n + CRC_SIZE
    if total > max_frame:
        raise FrameTooLargeError(
            f"frame header announces {total} bytes, more than the {max_frame}-byte limit"
        )
    return total


def _iter_tlvs(payload: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    end = len(payload)
    while pos < end:
        tag = payload[pos]
        pos += 1
        if pos >= end:
            raise BadLengthError(f"TLV 0x{tag:02x} at offset {pos - 1} has no length byte")
        length = payload[pos]
        pos += 1
        if length & 0x80:
            if pos >= end:
                raise BadLengthError(f"TLV 0x{tag:02x} two-byte length is cut short")
            length = (length & 0x7F) | (payload[pos] << 7)
            pos += 1
        if pos + length > end:
            raise BadLengthError(
                f"TLV 0x{tag:02x} claims {length} bytes but only {end - pos} remain in the payload"
            )
        yield tag, bytes(payload[pos : pos + length])
        pos += length


def decode(frame: bytes, *, max_frame: int = MAX_DECODE_FRAME) -> Packet:
    """Parse exactly one frame.

    Raises :class:`ShortFrameError` (too few bytes), :class:`BadLengthError` (trailing bytes
    or a TLV overrunning the payload), :class:`BadCRCError` or :class:`FrameTooLargeError`.
    Never raises anything else for any input bytes.
    """
    frame = bytes(frame)
    total = frame_length(frame, max_frame=max_frame)
    if len(frame) < total:
        raise ShortFrameError(f"frame needs {total} bytes, got {len(frame)}")
    if len(frame) > total:
        raise BadLengthError(f"frame of {total} bytes followed by {len(frame) - total} extra bytes")
    body = frame[: total - CRC_SIZE]
    (crc,) = _CRC.unpack_from(frame, total - CRC_SIZE)
    expected = zlib.crc32(body) & 0xFFFFFFFF
    if crc != expected:
        raise BadCRCError(f"bad checksum: frame says 0x{crc:08x}, computed 0x{expected:08x}")
    ptype, _ = _HEADER.unpack_from(body)
    return Packet(ptype, tuple(_iter_tlvs(body[HEADER_SIZE:])))


def read_frame(recv: Callable[[int], bytes], *, max_frame: int = MAX_DECODE_FRAME) -> bytes:
    """Read one complete frame from a byte stream.

    ``recv(n)`` must return between 1 and ``n`` bytes, or ``b""`` at end of stream (like
    ``socket.recv``); it owns any timeout.  The header tells how many more bytes to wait
    for, so a frame arriving in pieces is reassembled.  Returns the raw frame (pass it to
    :func:`decode`).  End of stream before the frame is complete raises
    :class:`ShortFrameError`; a header announcing more than ``max_frame`` bytes raises
    :class:`FrameTooLargeError` straight away.
    """
    buf = bytearray()
    need = HEADER_SIZE
    have_length = False
    while len(buf) < need:
        chunk = recv(need - len(buf))
        if not chunk:
            raise ShortFrameError(f"connection closed after {len(buf)} of {need} bytes of a frame")
        buf += chunk
        if not have_length and len(buf) >= HEADER_SIZE:
            need = frame_length(bytes(buf[:HEADER_SIZE]), max_frame=max_frame)
            have_length = True
    return bytes(buf)


def getset_request(name: str, value: str | None = None) -> Packet:
    """A get (``value is None``) or set request packet; strings carry a trailing NUL."""
    tags: list[tuple[int, bytes]] = [(TAG_GETSET_NAME, name.encode("utf-8") + b"\x00")]
    if value is not None:
        tags.append((TAG_GETSET_VALUE, value.encode("utf-8") + b"\x00"))
    return Packet(TYPE_GETSET_REQUEST, tuple(tags))


def discover_request(
    device_type: int = DEVICE_TYPE_WILDCARD, device_id: int = DEVICE_ID_WILDCARD
) -> Packet:
    """A discover request (device type and device id tags, wildcards by default)."""
    return Packet(
        TYPE_DISCOVER_REQUEST,
        (
            (TAG_DEVICE_TYPE, device_type.to_bytes(4, "big")),
            (TAG_DEVICE_ID, device_id.to_bytes(4, "big")),
        ),
    )
