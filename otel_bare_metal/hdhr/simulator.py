"""A simulated HDHomeRun device for tests and demos.

It answers GET requests on TCP and discover requests on UDP **on the same port**, like a
real device: SiliconDust's ``hdhomerun_config <ip> get …`` first discovers the device by
unicast to ``<ip>``, then connects TCP to the address that answered, and GETs
``/sys/model`` before the variable asked for.

Tuner 0 is idle; the others are locked on channels, with signal figures drifting slowly
around 70–100 % and counters that grow with time.  Unknown variables answer
``ERROR: unknown getset variable``; SET requests answer an error (the simulator is
read-only).  Faults can be switched on at construction or at run time (thread-safe):
added latency, dropped replies, bad CRC, truncated replies, garbage bytes and a slow drip.

The simulator only ever *replies* (to the sender of a request); it never broadcasts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import packet as pkt
from .packet import MAX_TUNERS, Packet, ProtocolError

__all__ = ["Faults", "Simulator", "DEFAULT_DEVICE_ID", "GARBAGE"]

DEFAULT_DEVICE_ID = 0x12345674  # passes the check digit
#: What the ``garbage`` fault sends instead of a reply.  Its header announces a 48 KB frame.
GARBAGE = b"\xde\xad\xbe\xef" * 16
_POLL = 0.1  # how often blocked threads look at the stop flag
_TUNER_RE = re.compile(r"/tuner([0-9]{1,2})/([a-z]+)")


@dataclass(frozen=True)
class Faults:
    """Misbehaviours applied to TCP replies (all off by default).

    ``latency``: seconds to wait before replying.  ``drop``: never answer (the connection
    stays open).  ``bad_crc``: corrupt the CRC.  ``truncate``: send the first half of the
    reply, then close the connection.  ``garbage``: send :data:`GARBAGE` instead of the
    reply.  ``drip``: send the reply one byte at a time, ``drip`` seconds apart.
    ``discover``: answer UDP discover requests (on by default).
    """

    latency: float = 0.0
    drop: bool = False
    bad_crc: bool = False
    truncate: bool = False
    garbage: bool = False
    drip: float = 0.0
    discover: bool = True


@dataclass(frozen=True)
class _Channel:
    channel: str
    lock: str
    vchannel: str
    callsign: str
    tsid: int
    raw_bps: int
    ts_bps: int


_ATSC_CHANNELS = (
    _Channel("8vsb:575000000", "8vsb:575000000", "22.1", "KSIM", 0x01F7, 19392658, 9366912),
    _Channel("8vsb:189000000", "8vsb:189000000", "8.1", "WDEM", 0x0A1B, 19392658, 13981216),
    _Channel("auto:33", "8vsb:587000000", "33.1", "KTST", 0x0C21, 19392658, 7720448),
)
_CABLE_CHANNELS = (
    _Channel("qam:249000000", "qam256:249000000", "702", "HBOSIM", 0x0123, 38810720, 12514784),
    _Channel("qam:381000000", "qam256:381000000", "711", "ESPNSIM", 0x0456, 38810720, 15211104),
)

_ATSC_FEATURES = (
    "channelmap: us-bcast us-cable us-hrc us-irc kr-bcast kr-cable\n"
    "modulation: 8vsb qam256 qam64\n"
    "auto-modulation: auto auto6t auto6c qam\n"
)
_CABLE_FEATURES = (
    "channelmap: us-cable us-hrc us-irc\n"
    "modulation: qam256 qam64\n"
    "auto-modulation: auto auto6c qam\n"
    "cablecard: yes\n"
)


class Simulator:
    """A fake HDHomeRun on ``host:port`` (``port=0`` picks a free port for both TCP and UDP).

    ``tuners``: number of tuners (tuner 0 idle, others locked).  ``cablecard``: behave like
    a CableCARD model (QAM channels and a ``cc:`` line in the tuner debug).
    ``variables``: extra or overriding variables (name -> value), e.g. a value longer than
    127 bytes.  ``clock``: monotonic time source, for deterministic values in tests.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tuners: int = 4,
        faults: Faults | None = None,
        cablecard: bool = False,
        device_id: int = DEFAULT_DEVICE_ID,
        variables: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= tuners <= MAX_TUNERS:
            raise ValueError(f"tuners must be between 0 and {MAX_TUNERS}")
        if not 0 <= port <= 65535:
            raise ValueError("port out of range")
        self.host = host
        self.port = port
        self.tuners = tuners
        self.cablecard = cablecard
        self.device_id = device_id
        self._clock = clock
        self._start_time = clock()
        self._faults = faults or Faults()
        self._faults_lock = threading.Lock()
        self._extra = dict(variables or {})
        self._stop = threading.Event()
        self._tcp: socket.socket | None = None
        self._udp: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()  # guards _conns and _threads
        self._address: tuple[str, int] | None = None
        self.requests_served = 0

    # -- faults ------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        with self._faults_lock:
            return self._faults

    def set_faults(self, faults: Faults | None = None, **changes: object) -> Faults:
        """Replace the faults, or change some fields: ``set_faults(drop=True)``."""
        with self._faults_lock:
            base = faults if faults is not None else self._faults
            self._faults = dataclasses.replace(base, **changes)  # type: ignore[arg-type]  # field names checked by replace at run time
            return self._faults

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults = Faults()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (after :meth:`start`)."""
        if self._address is None:
            raise RuntimeError("simulator not started")
        return self._address

    @property
    def address_text(self) -> str:
        """The bound address as ``host:port`` or ``[v6]:port``, ready for :class:`Client`."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> "Simulator":
        """Bind TCP and UDP on the same port and start serving.  Raises OSError if taken."""
        if self._tcp is not None:
            raise RuntimeError("already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        attempts = 20 if self.port == 0 else 1
        last_error: OSError | None = None
        for _ in range(attempts):
            tcp = socket.socket(family, socket.SOCK_STREAM)
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self.host, self.port))
                port = tcp.getsockname()[1]
                udp.bind((self.host, port))
                tcp.listen(16)
            except OSError as e:
                tcp.close()
                udp.close()
                last_error = e
                continue
            self._tcp, self._udp = tcp, udp
            self._address = (self.host, port)
            break
        else:
            assert last_error is not None
            raise OSError(
                last_error.errno,
                f"cannot bind TCP and UDP {self.host}:{self.port}: {last_error.strerror}",
            )
        assert self._tcp is not None and self._udp is not None
        self._tcp.settimeout(_POLL)
        self._udp.settimeout(_POLL)
        for target, name in ((self._accept_loop, "accept"), (self._udp_loop, "udp")):
            t = threading.Thread(target=target, name=f"hdhr-sim-{name}", daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Stop serving, close every socket and join the threads (within ``timeout``)."""
        self._stop.set()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        end = time.monotonic() + timeout
        with self._conns_lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        for s in (self._tcp, self._udp):
            if s is not None:
                s.close()
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- variables ---------------------------------------------------------------------

    def _elapsed(self) -> float:
        return max(0.0, self._clock() - self._start_time)

    def _channel(self, n: int) -> _Channel | None:
        if n == 0:
            return None
        table = _CABLE_CHANNELS if self.cablecard else _ATSC_CHANNELS
        return table[(n - 1) % len(table)]

    def _signal(self, n: int) -> tuple[int, int, int]:
        t = self._elapsed()
        ss = 86 + round(12 * math.sin(t / 40.0 + n))
        snq = 84 + round(10 * math.sin(t / 55.0 + 2 * n))
        seq = 100 if (int(t / 30.0) + n) % 5 else 97
        return ss, snq, seq

    def _counters(self, n: int, ch: _Channel) -> dict[str, int]:
        t = self._elapsed()
        wobble = math.sin(t / 7.0 + n)
        ts_bps = int(ch.ts_bps * (1 + 0.02 * wobble)) // 8 * 8
        return {
            "raw_bps": ch.raw_bps,
            "ts_bps": ts_bps,
            "net_bps": ts_bps + 448,
            "pps": ts_bps // (7 * 188 * 8),
            "te": int(t / 20.0) * (n % 3),  # transport errors trickle in on some tuners
            "crc": int(t / 45.0) * (n % 2),
            "resync": int(t / 300.0),
            "overflow": 0,
            "err": int(t / 60.0) * (n % 2),
        }

    def tuner_debug(self, n: int) -> str:
        """The ``/tunerN/debug`` text (newer-firmware format)."""
        ch = self._channel(n)
        if ch is None:
            lines = [
                "tun: ch=none lock=none ss=0 snq=0 seq=0 dbg=0",
                "dev: bps=0 resync=0 overflow=0",
            ]
            if self.cablecard:
                lines.append(self._cc_line())
            lines += ["ts:  bps=0 te=0 crc=0", "net: bps=0 pps=0 err=0 stop=4"]
            return "\n".join(lines) + "\n"
        ss, snq, seq = self._signal(n)
        c = self._counters(n, ch)
        lines = [
            f"tun: ch={ch.channel} lock={ch.lock} ss={ss} snq={snq} seq={seq} "
            f"dbg={-2875 + 37 * n}/{9836 - 11 * n}",
            f"dev: bps={c['raw_bps']} resync={c['resync']} overflow={c['overflow']}",
        ]
        if self.cablecard:
            lines.append(self._cc_line())
        lines += [
            f"ts:  bps={c['ts_bps']} te={c['te']} crc={c['crc']}",
            f"net: bps={c['net_bps']} pps={c['pps']} err={c['err']} stop=0",
        ]
        return "\n".join(lines) + "\n"

    def _cc_line(self) -> str:
        """The ``cc:`` line: one CableCARD per device, so every tuner (idle ones too) reports the
        same figures, as a real CableCARD model does."""
        channels = (self._channel(n) for n in range(1, self.tuners))
        bps = sum(ch.raw_bps for ch in channels if ch is not None)
        return f"cc:  bps={bps} resync={int(self._elapsed() / 300.0)} overflow=0"

    def tuner_status(self, n: int) -> str:
        ch = self._channel(n)
        if ch is None:
            return "ch=none lock=none ss=0 snq=0 seq=0 bps=0 pps=0"
        ss, snq, seq = self._signal(n)
        c = self._counters(n, ch)
        lock = ch.lock.partition(":")[0]
        return (
            f"ch={ch.channel} lock={lock} ss={ss} snq={snq} seq={seq} "
            f"bps={c['ts_bps']} pps={c['pps']}"
        )

    def tuner_streaminfo(self, n: int) -> str:
        ch = self._channel(n)
        if ch is None:
            return "none\n"
        if self.cablecard:
            return f"1: {ch.vchannel} {ch.callsign} (encrypted)\ntsid=0x{ch.tsid:04X}\n"
        major = ch.vchannel.split(".")[0]
        return (
            f"3: {major}.1 {ch.callsign}-HD\n"
            f"4: {major}.2 {ch.callsign}-SD\n"
            f"5: {major}.3 {ch.callsign}-AUD (no data)\n"
            f"tsid=0x{ch.tsid:04X}\n"
        )

    def _system_values(self) -> dict[str, str]:
        if self.cablecard:
            model, hwmodel, features = "hdhomerun3_cablecard", "HDHR3-CC", _CABLE_FEATURES
        else:
            model, hwmodel, features = "hdhomerun4_atsc", "HDHR4-2US", _ATSC_FEATURES
        up = int(self._elapsed())
        return {
            "/sys/model": model,
            "/sys/hwmodel": hwmodel,
            "/sys/version": "20220203",
            "/sys/features": features,
            "/sys/copyright": "Copyright © 2005-2022 Silicondust USA Inc. "
            "<www.silicondust.com>. All rights reserved.\n",
            "/sys/debug": (
                f"mem: ddr=128 nbuf=128 nmem=14096 npool=300 dmax=24 uptime={up}\n"
                "loop: pkt=2\n"
                "t0: pt=12 cal=-5465\n"
                "t1: pt=12 cal=-5465\n"
                "eth: link=100f\n"
            ),
        }

    def _tuner_value(self, n: int, item: str) -> str | None:
        if not 0 <= n < self.tuners:
            return None
        ch = self._channel(n)
        if item == "debug":
            return self.tuner_debug(n)
        if item == "status":
            return self.tuner_status(n)
        if item == "streaminfo":
            return self.tuner_streaminfo(n)
        if item == "vchannel":
            return ch.vchannel if ch else "none"
        if item == "target":
            return f"udp://192.0.2.10:{5000 + n}" if ch else "none"
        if item == "lockkey":
            return "none"
        if item == "channelmap":
            return "us-cable" if self.cablecard else "us-bcast"
        return None

    _TUNER_ITEMS = ("debug", "status", "streaminfo", "vchannel", "target", "lockkey", "channelmap")

    def variables(self) -> dict[str, str]:
        """Every variable and its current value."""
        values = self._system_values()
        for n in range(self.tuners):
            for item in self._TUNER_ITEMS:
                value = self._tuner_value(n, item)
                assert value is not None
                values[f"/tuner{n}/{item}"] = value
        values.update(self._extra)
        return values

    def value(self, name: str) -> str | None:
        """The value of one variable, or ``None`` if unknown (names are case-insensitive)."""
        lowered = name.lower()
        for key, val in self._extra.items():
            if key.lower() == lowered:
                return val
        m = _TUNER_RE.fullmatch(lowered)
        if m is not None:
            return self._tuner_value(int(m.group(1)), m.group(2))
        if lowered.startswith("/sys/"):
            return self._system_values().get(lowered)
        return None

    def answer(self, request: Packet) -> Packet | None:
        """The reply to one decoded request, or ``None`` when the device stays silent."""
        if request.type != pkt.TYPE_GETSET_REQUEST:
            return None
        raw_name = request.get(pkt.TAG_GETSET_NAME)
        if raw_name is None:
            return _error_reply("ERROR: unknown getset variable")
        name = pkt.string_value(raw_name)
        if request.get(pkt.TAG_GETSET_VALUE) is not None:
            return _error_reply("ERROR: read-only simulator")
        value = self.value(name)
        if value is None:
            return _error_reply("ERROR: unknown getset variable")
        return Packet(
            pkt.TYPE_GETSET_REPLY,
            (
                (pkt.TAG_GETSET_NAME, name.encode("utf-8") + b"\x00"),
                (pkt.TAG_GETSET_VALUE, value.encode("utf-8") + b"\x00"),
            ),
        )

    # -- TCP ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._tcp is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(_POLL)
                continue
            conn.settimeout(_POLL)
            with self._conns_lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self._conns.add(conn)
                t = threading.Thread(
                    target=self._serve, args=(conn,), name="hdhr-sim-conn", daemon=True
                )
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
                t.start()

    def _recv(self, conn: socket.socket, n: int) -> bytes:
        while True:
            if self._stop.is_set():
                return b""
            try:
                return conn.recv(n)
            except socket.timeout:
                continue

    def _serve(self, conn: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                try:
                    frame = pkt.read_frame(lambda n: self._recv(conn, n))
                    request = pkt.decode(frame)
                except (ProtocolError, OSError):
                    return  # a real device drops a connection that sends garbage
                reply = self.answer(request)
                if reply is None:
                    return
                with self._faults_lock:
                    self.requests_served += 1
                if not self._send_reply(conn, pkt.encode(reply)):
                    return
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()

    def _send_reply(self, conn: socket.socket, data: bytes) -> bool:
        """Send a reply with the current faults applied; False to close the connection."""
        faults = self.faults
        if faults.latency > 0 and self._stop.wait(faults.latency):
            return False
        if faults.drop:
            return True
        if faults.garbage:
            data = GARBAGE
        elif faults.bad_crc:
            data = data[:-1] + bytes((data[-1] ^ 0xFF,))
        try:
            if faults.truncate:
                conn.sendall(data[: max(1, len(data) // 2)])
                return False
            if faults.drip > 0:
                for i in range(len(data)):
                    conn.sendall(data[i : i + 1])
                    if i + 1 < len(data) and self._stop.wait(faults.drip):
                        return False
                return True
            conn.sendall(data)
        except OSError:
            return False
        return True

    # -- UDP ---------------------------------------------------------------------------

    def _udp_loop(self) -> None:
        assert self._udp is not None
        while not self._stop.is_set():
            try:
                data, source = self._udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(_POLL)
                continue
            if not self.faults.discover:
                continue
            try:
                request = pkt.decode(data)
            except ProtocolError:
                continue
            if request.type != pkt.TYPE_DISCOVER_REQUEST or not self._discover_matches(request):
                continue
            reply = self._discover_reply(source)
            try:
                self._udp.sendto(pkt.encode(reply), source)  # unicast back to the sender only
            except OSError:
                continue

    def _discover_matches(self, request: Packet) -> bool:
        types = [v for v in request.get_all(pkt.TAG_DEVICE_TYPE) if len(v) == 4]
        multi = request.get(pkt.TAG_MULTI_TYPE)
        if multi is not None:
            types += [multi[i : i + 4] for i in range(0, len(multi) - 3, 4)]
        wanted_types = {int.from_bytes(v, "big") for v in types}
        if wanted_types and not wanted_types & {pkt.DEVICE_TYPE_TUNER, pkt.DEVICE_TYPE_WILDCARD}:
            return False
        wanted_id = request.get_u32(pkt.TAG_DEVICE_ID)
        return wanted_id in (None, pkt.DEVICE_ID_WILDCARD, self.device_id)

    def _local_ip_for(self, source: tuple[Any, ...]) -> str:
        host = self.address[0]
        if host not in ("", "0.0.0.0", "::"):
            return host
        family = socket.AF_INET6 if ":" in source[0] else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(source[:2])  # no packet is sent; the kernel picks a route
                return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"

    def _discover_reply(self, source: tuple[Any, ...]) -> Packet:
        ip = self._local_ip_for(source)
        base = f"http://[{ip}]:80" if ":" in ip else f"http://{ip}:80"
        return Packet(
            pkt.TYPE_DISCOVER_REPLY,
            (
                (pkt.TAG_DEVICE_TYPE, pkt.DEVICE_TYPE_TUNER.to_bytes(4, "big")),
                (pkt.TAG_DEVICE_ID, self.device_id.to_bytes(4, "big")),
                (pkt.TAG_TUNER_COUNT, bytes((self.tuners,))),
                (pkt.TAG_DEVICE_AUTH_STR, b"simulatedAuthString0123456"),
                (pkt.TAG_BASE_URL, base.encode()),
                (pkt.TAG_LINEUP_URL, f"{base}/lineup.json".encode()),
            ),
        )


def _error_reply(message: str) -> Packet:
    return Packet(pkt.TYPE_GETSET_REPLY, ((pkt.TAG_ERROR_MESSAGE, message.encode() + b"\x00"),))
