"""The client against the simulator and against hand-written frames from a scripted server."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from otel_bare_metal.hdhr import packet as pkt
from otel_bare_metal.hdhr.client import (
    Client,
    DeviceError,
    RequestTimeout,
    TransportError,
    is_unknown_variable,
    parse_address,
)
from otel_bare_metal.hdhr.simulator import Faults, Simulator
from otel_bare_metal.hdhr.text import ParseError


def open_fds() -> int:
    """Number of open file descriptors of this process (Linux)."""
    return len(os.listdir("/proc/self/fd"))


def reply_frame(name: str, value: bytes | str, *, nul: bool = True) -> bytes:
    """A get reply frame echoing ``name`` with ``value`` (optionally without trailing NUL)."""
    raw = value.encode() if isinstance(value, str) else value
    return pkt.encode(
        pkt.Packet(
            pkt.TYPE_GETSET_REPLY,
            (
                (pkt.TAG_GETSET_NAME, name.encode() + b"\x00"),
                (pkt.TAG_GETSET_VALUE, raw + (b"\x00" if nul else b"")),
            ),
        )
    )


def recv_request(conn: socket.socket) -> pkt.Packet | None:
    """Read one request frame from a test connection (None at end of stream)."""
    try:
        return pkt.decode(pkt.read_frame(conn.recv))
    except (pkt.ProtocolError, OSError):
        return None


# -- addresses -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text,expected",
    [
        ("192.168.1.8", ("192.168.1.8", 65001)),
        ("192.168.1.8:1234", ("192.168.1.8", 1234)),
        ("hdhr.local", ("hdhr.local", 65001)),
        ("[::1]:5000", ("::1", 5000)),
        ("[fe80::1%eth0]", ("fe80::1%eth0", 65001)),
        ("::1", ("::1", 65001)),
        ("2001:db8::7", ("2001:db8::7", 65001)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text", ["", ":65001", "host:", "host:abc", "host:0", "host:65536", "[::1", "[::1]x", "[nothost]:1",
             "1:2:3:zz", "host:１２"]
)
def test_parse_address_bad(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


# -- against the simulator -------------------------------------------------------------------

def test_get_against_simulator(sim: Simulator) -> None:
    with Client(sim.address_text, timeout=2) as c:
        assert c.model() == "hdhomerun4_atsc"
        assert c.hwmodel() == "HDHR4-2US"
        assert c.version() == "20220203"
        assert c.get("/sys/copyright").startswith("Copyright © 2005")
        features = c.features()
        assert len(features.encode()) > 127  # exercises the two-byte TLV length
        assert features.startswith("channelmap: us-bcast")
        assert c.get("/tuner0/vchannel") == "none"
        assert c.get("/tuner1/vchannel") == "22.1"


def test_high_level_records(sim: Simulator) -> None:
    with Client(sim.address_text) as c:
        idle = c.tuner_debug(0)
        assert idle.tun is not None and idle.tun.channel is None and idle.net is not None
        assert idle.net.stop == 4
        busy = c.tuner_debug(1)
        assert busy.tun is not None and busy.tun.locked
        assert 70 <= busy.tun.signal_strength <= 100  # type: ignore[operator]
        assert busy.dev is not None and busy.dev.bps == 19392658
        assert busy.ts is not None and busy.ts.bps > 0  # type: ignore[operator]
        assert busy.cc is None
        # status and streaminfo are served as raw text (the exporter reads only debug)
        assert c.get("/tuner2/status").startswith("ch=8vsb:189000000 lock=8vsb ")
        assert c.get("/tuner1/streaminfo").splitlines()[0] == "3: 22.1 KSIM-HD"
        assert c.get("/tuner0/streaminfo").strip() == "none"


def test_device_error_unknown_variable(sim: Simulator) -> None:
    with Client(sim.address_text) as c:
        with pytest.raises(DeviceError) as info:
            c.get("/sys/nothing")
        assert info.value.message == "ERROR: unknown getset variable"
        assert info.value.is_unknown_variable() and is_unknown_variable(info.value)
        with pytest.raises(DeviceError) as info:
            c.get("/tuner9/debug")
        assert info.value.is_unknown_variable()
        # the connection is still usable after a device error
        assert c.model() == "hdhomerun4_atsc"


def test_device_error_other() -> None:
    err = DeviceError("ERROR: resource locked by 10.0.4.77")
    assert not err.is_unknown_variable() and not is_unknown_variable(err)
    assert not is_unknown_variable(ValueError("ERROR: unknown getset variable"))


def test_cablecard_simulator_records() -> None:
    with Simulator("127.0.0.1", 0, tuners=2, cablecard=True) as sim, Client(sim.address_text) as c:
        d = c.tuner_debug(1)
        assert d.cc is not None and d.cc.bps == 38810720
        assert c.tuner_debug(0).cc is not None
        assert "(encrypted)" in c.get("/tuner1/streaminfo")


def test_long_value_over_two_byte_length() -> None:
    long_value = "x" * 1000 + "©"
    with Simulator("127.0.0.1", 0, variables={"/sys/long": long_value}) as sim:
        with Client(sim.address_text) as c:
            assert c.get("/sys/long") == long_value


def test_ipv6_loopback() -> None:
    try:
        sim = Simulator("::1", 0).start()
    except OSError as e:  # pragma: no cover - depends on the machine
        pytest.skip(f"no IPv6 loopback: {e}")
    try:
        for address in (sim.address_text, ):
            with Client(address) as c:
                assert c.model() == "hdhomerun4_atsc"
    finally:
        sim.stop()


def test_one_connection_reused(sim: Simulator) -> None:
    connects = []

    def connect(address: tuple[str, int], timeout: float) -> socket.socket:
        connects.append(address)
        return socket.create_connection(address, timeout=timeout)

    with Client(sim.address_text, connect=connect) as c:
        for _ in range(20):
            c.model()
    assert connects == [sim.address]


def test_existing_socket_is_used(sim: Simulator) -> None:
    sock = socket.create_connection(sim.address, timeout=2)
    with Client(None, sock=sock) as c:
        assert c.model() == "hdhomerun4_atsc"
    assert sock.fileno() == -1  # the client closed it


def test_client_needs_address_or_socket() -> None:
    with pytest.raises(ValueError):
        Client(None)
    with pytest.raises(ValueError):
        Client("127.0.0.1", timeout=0)


def test_threads_share_one_client(sim: Simulator) -> None:
    errors: list[BaseException] = []
    results: list[str] = []

    def work(n: int) -> None:
        try:
            for _ in range(25):
                results.append(c.get(f"/tuner{n % 4}/channelmap"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    with Client(sim.address_text) as c:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert errors == []
    assert results == ["us-bcast"] * 100


def test_closed_client_refuses(sim: Simulator) -> None:
    c = Client(sim.address_text)
    c.model()
    c.close()
    with pytest.raises(TransportError, match="closed"):
        c.model()


# -- simulator faults seen by the client -----------------------------------------------------

def _timed(fn):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    try:
        fn()
    except BaseException as e:
        return e, time.monotonic() - start
    return None, time.monotonic() - start


@pytest.mark.parametrize(
    "faults,error",
    [
        (Faults(bad_crc=True), pkt.BadCRCError),
        (Faults(truncate=True), pkt.ShortFrameError),
        (Faults(garbage=True), pkt.FrameTooLargeError),
        (Faults(drop=True), RequestTimeout),
        (Faults(latency=5), RequestTimeout),
        (Faults(drip=0.5), RequestTimeout),
    ],
    ids=["bad-crc", "truncate", "garbage", "drop", "latency", "drip"],
)
def test_faults(sim: Simulator, faults: Faults, error: type[Exception]) -> None:
    timeout = 0.6
    sim.set_faults(faults)
    with Client(sim.address_text, timeout=timeout) as c:
        e, elapsed = _timed(c.model)
        assert isinstance(e, error), repr(e)
        assert elapsed < timeout + 0.5
        if error is RequestTimeout:
            assert elapsed >= timeout - 0.05
        sim.clear_faults()
        assert c.model() == "hdhomerun4_atsc"  # recovers on a new connection


def test_small_latency_is_fine(sim: Simulator) -> None:
    sim.set_faults(latency=0.2)
    with Client(sim.address_text, timeout=1) as c:
        e, elapsed = _timed(c.model)
        assert e is None and 0.2 <= elapsed < 1


# -- hand-written frames --------------------------------------------------------------------

def _serve_reply(frame: bytes, *, pieces: int = 1, pause: float = 0.0, close: bool = False):  # type: ignore[no-untyped-def]
    def script(conn: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            if recv_request(conn) is None:
                return
            step = max(1, -(-len(frame) // pieces))
            for i in range(0, len(frame), step):
                conn.sendall(frame[i : i + step])
                if pause and stop.wait(pause):
                    return
            if close:
                return

    return script


def test_reply_in_pieces(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(_serve_reply(reply_frame("/sys/model", "hdhomerun4_atsc"), pieces=7, pause=0.01))
    with Client(server.address) as c:
        assert c.get("/sys/model") == "hdhomerun4_atsc"
        assert c.get("/sys/model") == "hdhomerun4_atsc"
    assert server.connections == 1


def test_two_replies_in_one_segment_are_two_replies(scripted) -> None:  # type: ignore[no-untyped-def]
    """Bytes read past one reply frame are the start of the next one: the next request gets
    them, in order, and a dropped connection forgets them with the stream."""
    first, second = reply_frame("/sys/model", "hdhomerun4_atsc"), reply_frame("/sys/model", "hdhomerun5_atsc")

    def script(conn: socket.socket, stop: threading.Event) -> None:
        if recv_request(conn) is None:
            return
        conn.sendall(first + second)  # one write: the client reads both in one go
        n = 1
        while not stop.is_set() and recv_request(conn) is not None:
            n += 1
            conn.sendall(reply_frame("/sys/model", f"reply to request {n}"))

    server = scripted(script)
    with Client(server.address) as c:
        assert c.get("/sys/model") == "hdhomerun4_atsc"
        assert c.get("/sys/model") == "hdhomerun5_atsc"  # served from what the first read took
        # the stream stays one reply ahead, as it would if the bytes had waited in the socket
        assert c.get("/sys/model") == "reply to request 2"
    server2 = scripted(script)
    with Client(server2.address) as c:
        assert c.get("/sys/model") == "hdhomerun4_atsc"
        c._drop_connection()  # what any failure does: the stream's unread bytes go with it
        assert c.get("/sys/model") == "hdhomerun4_atsc"
    assert server2.connections == 2


def test_value_without_nul(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(_serve_reply(reply_frame("/sys/model", "hdhomerun5_dvbt", nul=False)))
    with Client(server.address) as c:
        assert c.get("/sys/model") == "hdhomerun5_dvbt"


def test_value_with_invalid_utf8(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(_serve_reply(reply_frame("/sys/model", b"ab\xffcd")))
    with Client(server.address) as c:
        assert c.get("/sys/model") == "ab\ufffdcd"


def test_value_over_127_bytes_in_pieces(scripted) -> None:  # type: ignore[no-untyped-def]
    value = "channelmap: " + "us-bcast " * 40
    frame = reply_frame("/sys/features", value)
    assert frame[4 + 2 + len("/sys/features") + 1 + 1] & 0x80  # two-byte length on the wire
    server = scripted(_serve_reply(frame, pieces=5))
    with Client(server.address) as c:
        assert c.get("/sys/features") == value


def test_debug_sample_served_verbatim(scripted) -> None:  # type: ignore[no-untyped-def]
    text = "tun: ch=qam:33 lock=qam256 ss=84 snq=88 seq=100 dbg=22081-6930\ndev: resync=0 overflow=0\n" \
           "ts:  bps=38809216 ut=94 te=0 miss=0 crc=0\nflt: bps=38809216\nnet: pps=0 err=0 stop=0\n"
    server = scripted(_serve_reply(reply_frame("/tuner0/debug", text)))
    with Client(server.address) as c:
        d = c.tuner_debug(0)
        assert d.flt is not None and d.flt.bps == 38809216 and d.ts is not None and d.ts.ut == 94


def test_unparsable_debug_raises_parse_error(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(_serve_reply(reply_frame("/tuner0/debug", "tun: ss=lots")))
    with Client(server.address) as c, pytest.raises(ParseError):
        c.tuner_debug(0)


@pytest.mark.parametrize(
    "frame,error,match",
    [
        (reply_frame("/sys/model", "x")[:-1] + b"\x00", pkt.BadCRCError, "checksum"),
        (pkt.encode(pkt.Packet(pkt.TYPE_DISCOVER_REPLY, ((pkt.TAG_GETSET_VALUE, b"x\0"),))),
         pkt.UnexpectedReplyError, "reply type 0x0003"),
        (pkt.encode(pkt.Packet(pkt.TYPE_GETSET_REPLY, ((pkt.TAG_GETSET_NAME, b"/sys/model\0"),))),
         pkt.UnexpectedReplyError, "neither"),
        (reply_frame("/sys/other", "x"), pkt.UnexpectedReplyError, "not '/sys/model'"),
        (pkt.encode(pkt.Packet(pkt.TYPE_GETSET_REPLY, ((pkt.TAG_GETSET_VALUE, b"v\0"), (0x77, b"?")))),
         None, None),
        # libhdhomerun: the first value or error tag decides
        (pkt.encode(pkt.Packet(pkt.TYPE_GETSET_REPLY, ((pkt.TAG_GETSET_NAME, b"/sys/model\0"),
                                                       (pkt.TAG_GETSET_VALUE, b"v\0"), (pkt.TAG_ERROR_MESSAGE, b"ERROR: x\0")))),
         None, None),
    ],
    ids=["bad-crc", "wrong-type", "no-value", "wrong-name", "unknown-tag-ok", "value-then-error"],
)
def test_bad_replies(scripted, frame: bytes, error, match) -> None:  # type: ignore[no-untyped-def]
    server = scripted(_serve_reply(frame))
    with Client(server.address, timeout=1) as c:
        if error is None:
            assert c.get("/sys/model") == "v"
        else:
            with pytest.raises(error, match=match):
                c.get("/sys/model")
            # the failed connection is dropped: the next request opens a new one
            with pytest.raises(error, match=match):
                c.get("/sys/model")
            assert server.connections == 2


def test_error_tag_before_a_value_is_the_devices_error(scripted) -> None:  # type: ignore[no-untyped-def]
    frame = pkt.encode(pkt.Packet(pkt.TYPE_GETSET_REPLY, ((pkt.TAG_ERROR_MESSAGE, b"ERROR: busy\0"), (pkt.TAG_GETSET_VALUE, b"v\0"))))
    server = scripted(_serve_reply(frame))
    with Client(server.address, timeout=1) as c, pytest.raises(DeviceError, match="ERROR: busy"):
        c.get("/sys/model")


def test_truncated_reply_then_close(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(_serve_reply(reply_frame("/sys/model", "hdhomerun4_atsc")[:15], close=True))
    with Client(server.address, timeout=1) as c:
        with pytest.raises(pkt.ShortFrameError, match="after 15 of 39"):
            c.get("/sys/model")


def test_silent_device_fails_at_deadline(scripted) -> None:  # type: ignore[no-untyped-def]
    def silent(conn: socket.socket, stop: threading.Event) -> None:
        recv_request(conn)
        stop.wait(5)

    server = scripted(silent)
    with Client(server.address, timeout=0.7) as c:
        e, elapsed = _timed(lambda: c.get("/sys/model"))
    assert isinstance(e, RequestTimeout)
    assert 0.65 <= elapsed < 0.7 + 0.5


def test_slow_drip_fails_at_deadline_not_per_read(scripted) -> None:  # type: ignore[no-untyped-def]
    """One byte every 0.5 s: every single recv succeeds, yet the request must stop at ~1 s."""
    frame = reply_frame("/sys/model", "hdhomerun4_atsc")
    sent = []

    def drip(conn: socket.socket, stop: threading.Event) -> None:
        recv_request(conn)
        for i in range(len(frame)):
            conn.sendall(frame[i : i + 1])
            sent.append(i)
            if stop.wait(0.5):
                return

    server = scripted(drip)
    with Client(server.address, timeout=1.0) as c:
        e, elapsed = _timed(lambda: c.get("/sys/model"))
    assert isinstance(e, RequestTimeout)
    assert 0.95 <= elapsed < 1.0 + 0.5
    assert len(sent) >= 2  # bytes were flowing: a per-recv timeout would never fire


def test_connect_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on port now
    with Client(f"127.0.0.1:{port}", timeout=1) as c:
        with pytest.raises(TransportError, match="refused"):
            c.get("/sys/model")


def test_connect_timeout_uses_deadline() -> None:
    def hanging_connect(address: tuple[str, int], timeout: float) -> socket.socket:
        assert 0 < timeout <= 0.3
        raise socket.timeout("connect timed out")

    with Client("192.0.2.1", timeout=0.3, connect=hanging_connect) as c:
        with pytest.raises(RequestTimeout, match="connecting"):
            c.get("/sys/model")


def test_reconnect_once_after_server_closed(scripted) -> None:  # type: ignore[no-untyped-def]
    """The device drops an idle connection: the next request reconnects and succeeds."""
    frame = reply_frame("/sys/model", "hdhomerun4_atsc")

    def one_answer_then_close(conn: socket.socket, stop: threading.Event) -> None:
        if recv_request(conn) is not None:
            conn.sendall(frame)

    server = scripted(one_answer_then_close)
    with Client(server.address, timeout=1) as c:
        assert c.get("/sys/model") == "hdhomerun4_atsc"
        time.sleep(0.1)  # let the server close its side
        assert c.get("/sys/model") == "hdhomerun4_atsc"
        assert c.get("/sys/model") == "hdhomerun4_atsc"
    assert server.connections == 3


def test_no_retry_loop_when_server_always_closes(scripted) -> None:  # type: ignore[no-untyped-def]
    def close_at_once(conn: socket.socket, stop: threading.Event) -> None:
        recv_request(conn)

    server = scripted(close_at_once)
    with Client(server.address, timeout=1) as c:
        with pytest.raises(TransportError, match="without replying"):
            c.get("/sys/model")
    assert server.connections == 1  # a fresh connection failing is not retried


def test_no_retry_after_timeout(scripted) -> None:  # type: ignore[no-untyped-def]
    def silent(conn: socket.socket, stop: threading.Event) -> None:
        while recv_request(conn) is not None and not stop.is_set():
            pass

    server = scripted(silent)
    with Client(server.address, timeout=0.3) as c:
        with pytest.raises(RequestTimeout):
            c.get("/sys/model")
    assert server.connections == 1


def test_no_leaked_sockets(sim: Simulator, scripted) -> None:  # type: ignore[no-untyped-def]
    # Reads the request, never answers, and ends when the client hangs up.
    silent_server = scripted(lambda conn, stop: (recv_request(conn), recv_request(conn)))
    sim_fds = open_fds()  # simulator, scripted server already running
    for _ in range(5):
        with Client(sim.address_text) as c:
            c.model()
            with pytest.raises(DeviceError):
                c.get("/nope")
        sim.set_faults(bad_crc=True)
        with Client(sim.address_text) as c, pytest.raises(pkt.BadCRCError):
            c.model()
        sim.clear_faults()
        with Client(silent_server.address, timeout=0.05) as c, pytest.raises(RequestTimeout):
            c.model()
        c = Client("127.0.0.1:1", timeout=0.5)
        with pytest.raises(TransportError):
            c.model()
        c.close()
    # Server-side sockets close asynchronously; give the threads a moment.
    deadline = time.monotonic() + 2
    while open_fds() > sim_fds and time.monotonic() < deadline:
        time.sleep(0.02)
    assert open_fds() <= sim_fds
