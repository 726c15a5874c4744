"""Frame codec: the protocol doc's byte vectors, TLV lengths, typed errors, a round-trip
property test and fuzzing of the decoder."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_bare_metal.hdhr import packet as pkt
from otel_bare_metal.hdhr.packet import Packet


def h(text: str) -> bytes:
    """Hex with spaces and quoted ASCII segments (``"abc\\0"``) as in the doc's table."""
    out = bytearray()
    for i, part in enumerate(text.split('"')):
        if i % 2:
            out += part.replace("\\0", "\0").encode()
        else:
            out += bytes.fromhex(part.replace(" ", ""))
    return bytes(out)


# (what, packet, bytes) — protocol doc §4, verified there against hdhomerun_config.
VECTORS = [
    ("empty frame, type 0", Packet(0), h("0000 0000 1cdf4421")),
    ("type 1, tag 2 = ff", Packet(1, ((2, b"\xff"),)), h("0001 0003 0201ff 97a91873")),
    (
        "type 2, tag 3 = ff, tag 4 = aabbcc",
        Packet(2, ((3, b"\xff"), (4, b"\xaa\xbb\xcc"))),
        h("0002 0008 0301ff 0403aabbcc 5d5264f2"),
    ),
    (
        "type 3, tag 4 = 255 x ff",
        Packet(3, ((4, b"\xff" * 255),)),
        h("0003 0102 04 ff01" + "ff" * 255 + "d2c9422c"),
    ),
    (
        "discover request",
        pkt.discover_request(),
        h("0002 000c 01 04 ffffffff 02 04 ffffffff 73cc7d8f"),
    ),
    (
        "get /sys/model",
        pkt.getset_request("/sys/model"),
        h("0004 000d 03 0b 2f7379732f6d6f64656c00 8f5b54b5"),
    ),
    (
        "reply /sys/model",
        Packet(5, ((3, b"/sys/model\0"), (4, b"hdhomerun4_atsc\0"))),
        h('0005 001f 03 0b "/sys/model\\0" 04 10 "hdhomerun4_atsc\\0" aa54a687'),
    ),
    (
        "get /tuner0/debug",
        pkt.getset_request("/tuner0/debug"),
        h('0004 0010 03 0e "/tuner0/debug\\0" 3ed11c14'),
    ),
    (
        "error reply",
        Packet(5, ((5, b"ERROR: unknown getset variable\0"),)),
        h('0005 0021 05 1f "ERROR: unknown getset variable\\0" a7b780f0'),
    ),
]


@pytest.mark.parametrize("what,packet,frame", VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_encode(what: str, packet: Packet, frame: bytes) -> None:
    assert pkt.encode(packet) == frame


@pytest.mark.parametrize("what,packet,frame", VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_decode(what: str, packet: Packet, frame: bytes) -> None:
    assert pkt.decode(frame) == packet


def test_vector_reply_values() -> None:
    reply = pkt.decode(VECTORS[6][2])
    assert reply.type == pkt.TYPE_GETSET_REPLY
    assert reply.get_string(pkt.TAG_GETSET_NAME) == "/sys/model"
    assert reply.get_string(pkt.TAG_GETSET_VALUE) == "hdhomerun4_atsc"
    error = pkt.decode(VECTORS[8][2])
    assert error.get_string(pkt.TAG_ERROR_MESSAGE) == "ERROR: unknown getset variable"
    assert error.get(pkt.TAG_GETSET_VALUE) is None


@pytest.mark.parametrize(
    "n,encoded",
    [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (130, "8201"), (301, "ad02"), (32767, "ffff")],
)
def test_tlv_length(n: int, encoded: str) -> None:
    assert pkt.encode_tlv_length(n).hex() == encoded
    frame = pkt.encode(Packet(4, ((4, b"x" * n),)), max_frame=70000)
    assert frame[4] == 4
    assert frame[5 : 5 + len(encoded) // 2].hex() == encoded
    assert pkt.decode(frame, max_frame=70000).get(4) == b"x" * n


def test_tlv_length_too_long() -> None:
    with pytest.raises(pkt.FrameTooLargeError):
        pkt.encode_tlv_length(32768)


def test_two_byte_length_decoded_even_when_not_needed() -> None:
    # A non-minimal two-byte length (5 as 85 00) is still understood.
    body = bytes.fromhex("0004 0008".replace(" ", "")) + b"\x04\x85\x00hello"
    frame = body + zlib.crc32(body).to_bytes(4, "little")
    assert pkt.decode(frame).get(4) == b"hello"


def test_crc_is_little_endian() -> None:
    frame = pkt.encode(Packet(0))
    assert frame[-4:] == (zlib.crc32(b"\0\0\0\0")).to_bytes(4, "little")


def test_unknown_tags_are_kept() -> None:
    p = Packet(3, ((0x99, b"\x01\x02"), (pkt.TAG_DEVICE_ID, b"\x12\x34\x56\x74"), (0xFE, b"")))
    decoded = pkt.decode(pkt.encode(p))
    assert decoded.tags == p.tags
    assert decoded.get(0x99) == b"\x01\x02"
    assert decoded.get_u32(pkt.TAG_DEVICE_ID) == 0x12345674


def test_oversize_frame_refused_when_encoding() -> None:
    ok = Packet(4, ((4, b"a" * (pkt.MAX_PAYLOAD - 3)),))  # tag + 2-byte length + value
    assert len(pkt.encode(ok)) == pkt.MAX_FRAME
    too_big = Packet(4, ((4, b"a" * (pkt.MAX_PAYLOAD - 2)),))
    with pytest.raises(pkt.FrameTooLargeError):
        pkt.encode(too_big)


def test_oversize_frame_refused_when_decoding() -> None:
    with pytest.raises(pkt.FrameTooLargeError):
        pkt.decode(b"\x00\x05\xff\xff" + b"\0" * 10)
    with pytest.raises(pkt.FrameTooLargeError):
        pkt.frame_length(b"\xde\xad\xbe\xef")


@pytest.mark.parametrize(
    "frame,error",
    [
        (b"", pkt.ShortFrameError),
        (b"\x00\x05\x00", pkt.ShortFrameError),
        (h("0000 0000 1cdf44"), pkt.ShortFrameError),
        (h("0001 0003 0201ff"), pkt.ShortFrameError),
        (h("0000 0000 1cdf4421 00"), pkt.BadLengthError),
        (h("0000 0000 1cdf4422"), pkt.BadCRCError),
        (h("0001 0003 0201fe 97a91873"), pkt.BadCRCError),
    ],
    ids=["empty", "3 bytes", "crc cut", "no crc", "trailing byte", "crc wrong", "payload flipped"],
)
def test_decode_errors(frame: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        pkt.decode(frame)


def _with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


@pytest.mark.parametrize(
    "payload",
    [b"\x04", b"\x04\x05abc", b"\x04\x85", b"\x04\x81\x01" + b"a" * 10, b"\x03\x01a\x04"],
    ids=["no length", "value overruns", "two-byte length cut", "long value overruns", "second tag cut"],
)
def test_bad_tlv_lengths(payload: bytes) -> None:
    frame = _with_crc(b"\x00\x05" + len(payload).to_bytes(2, "big") + payload)
    with pytest.raises(pkt.BadLengthError):
        pkt.decode(frame)


def test_errors_share_one_base() -> None:
    for cls in (pkt.ShortFrameError, pkt.BadCRCError, pkt.BadLengthError, pkt.FrameTooLargeError,
                pkt.UnexpectedReplyError):
        assert issubclass(cls, pkt.ProtocolError)
    assert issubclass(pkt.ProtocolError, pkt.HDHomeRunError)


def test_string_value() -> None:
    assert pkt.string_value(b"abc\0") == "abc"
    assert pkt.string_value(b"abc") == "abc"
    assert pkt.string_value(b"ab\0cd\0") == "ab"
    assert pkt.string_value("©".encode() + b"\0") == "©"
    assert pkt.string_value(b"\xff\xfeok") == "\ufffd\ufffdok"


def _pieces(data: bytes, sizes: list[int]):
    pos = 0
    calls = []

    def recv(n: int) -> bytes:
        nonlocal pos
        size = min(n, sizes[len(calls) % len(sizes)])
        calls.append(n)
        chunk = data[pos : pos + size]
        pos += len(chunk)
        return chunk

    return recv, calls


def test_read_frame_in_pieces() -> None:
    frame = VECTORS[6][2]
    recv, calls = _pieces(frame + b"NEXT", [1, 3, 2])
    assert pkt.read_frame(recv) == frame  # stops exactly at the frame's end
    assert len(calls) > 10


def test_read_frame_eof() -> None:
    recv, _ = _pieces(VECTORS[6][2][:20], [7])
    with pytest.raises(pkt.ShortFrameError, match="after 20 of 39"):
        pkt.read_frame(recv)


def test_read_frame_refuses_huge_header_at_once() -> None:
    recv, calls = _pieces(b"\xde\xad\xbe\xef" * 100, [4])
    with pytest.raises(pkt.FrameTooLargeError):
        pkt.read_frame(recv)
    assert len(calls) == 1


def test_packet_validation() -> None:
    with pytest.raises(ValueError):
        Packet(0x10000)
    with pytest.raises(ValueError):
        Packet(1, ((256, b""),))
    with pytest.raises(TypeError):
        Packet(1, ((1, "text"),))  # type: ignore[arg-type]


# -- property test and fuzzing ---------------------------------------------------------------

tags_strategy = st.lists(
    st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=4
).map(tuple)
packets = st.builds(Packet, st.integers(0, 0xFFFF), tags_strategy)

ROUND_TRIP_EXAMPLES = 500
RANDOM_BYTES_EXAMPLES = 2000
MUTATED_EXAMPLES = 2000
SEEDED_MUTATIONS = 20000


@settings(max_examples=ROUND_TRIP_EXAMPLES, deadline=None)
@given(packets)
def test_round_trip(packet: Packet) -> None:
    frame = pkt.encode(packet)  # at most 4 x (2+1+300) + 8 bytes: under the limit
    assert len(frame) == 8 + sum(1 + (1 if len(v) < 128 else 2) + len(v) for _, v in packet.tags)
    assert pkt.decode(frame) == packet
    assert pkt.encode(pkt.decode(frame)) == frame


def _decode_only_codec_errors(data: bytes) -> None:
    try:
        result = pkt.decode(data)
    except pkt.ProtocolError:
        return
    assert isinstance(result, Packet)
    # Whatever decodes must re-encode to the same meaning.
    assert pkt.decode(pkt.encode(result, max_frame=pkt.MAX_DECODE_FRAME)) == result


@settings(max_examples=RANDOM_BYTES_EXAMPLES, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_only_codec_errors(data)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(pkt.encode(draw(packets)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "length", "fixcrc"]))
        if op == "flip" and frame:
            i = draw(st.integers(0, len(frame) - 1))
            frame[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del frame[draw(st.integers(0, len(frame))):]
        elif op == "insert":
            i = draw(st.integers(0, len(frame)))
            frame[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "length" and len(frame) >= 4:
            frame[2:4] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        elif op == "fixcrc" and len(frame) >= 8:
            # Make the CRC right so the TLV walk itself is exercised on garbage payloads.
            frame[-4:] = zlib.crc32(bytes(frame[:-4])).to_bytes(4, "little")
    return bytes(frame)


@settings(max_examples=MUTATED_EXAMPLES, deadline=None)
@given(mutated_frames())
def test_fuzz_mutated_frames(data: bytes) -> None:
    _decode_only_codec_errors(data)


def test_fuzz_seeded_mutation_loop() -> None:
    """A plain seeded loop: 20000 mutated frames, each a packet or a ProtocolError."""
    rng = random.Random(20240501)
    seeds = [frame for _, _, frame in VECTORS]
    outcomes = {"packet": 0, "error": 0}
    for _ in range(SEEDED_MUTATIONS):
        frame = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(5)
            if op == 0:
                frame[rng.randrange(len(frame))] ^= rng.randint(1, 255)
            elif op == 1:
                del frame[rng.randrange(len(frame) + 1):]
            elif op == 2:
                i = rng.randrange(len(frame) + 1)
                frame[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
            elif op == 3 and len(frame) >= 4:
                frame[2:4] = rng.randrange(0x10000).to_bytes(2, "big")
            if len(frame) >= 8 and rng.random() < 0.5:
                frame[-4:] = zlib.crc32(bytes(frame[:-4])).to_bytes(4, "little")
            if not frame:
                break
        try:
            result = pkt.decode(bytes(frame))
        except pkt.ProtocolError:
            outcomes["error"] += 1
        else:
            assert isinstance(result, Packet)
            outcomes["packet"] += 1
    assert sum(outcomes.values()) == SEEDED_MUTATIONS
    # The mutations must exercise both paths, or the loop proves little.
    assert outcomes["packet"] > 500 and outcomes["error"] > 500, outcomes
