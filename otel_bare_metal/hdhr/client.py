"""A read-only client of the HDHomeRun TCP control protocol (port 65001).

A GET is one request frame (type 0x0004, a NUL-terminated name TLV) answered by one
reply frame (type 0x0005) carrying either the echoed name and the value, or only an
error message ``ERROR: …``.  One TCP connection carries many requests in turn.

Timing: every request has a *deadline* covering connect, send and reading the whole
reply, however it is split into pieces: the caller's (``deadline=``, a ``time.monotonic()``
value) or, without one, ``timeout`` seconds from the call.  Each socket operation gets a
timeout recomputed from that monotonic deadline, so a device dripping one byte every half
second still fails at the deadline.  A request that times out is never retried.  A reused connection that
turns out to be broken (the device closed it while idle) is reopened once, like
libhdhomerun does.

Read-only by design: there is no public set API.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from . import packet as pkt
from otel_bare_metal.address import format_host_port, parse_host_port

from .packet import DEFAULT_PORT, MAX_TUNERS, HDHomeRunError, Packet, UnexpectedReplyError
from .text import TunerDebug, parse_tuner_debug

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "MAX_TUNERS",
    "Client",
    "DeviceError",
    "TransportError",
    "RequestTimeout",
    "ConnectFunction",
    "parse_address",
    "format_address",
    "is_unknown_variable",
]

#: libhdhomerun uses 2.5 s connect/send/receive timeouts.
DEFAULT_TIMEOUT = 2.5
#: Bytes asked of the socket per read: a getset reply (a tuner's debug text is about 200 bytes)
#: fits in one read; a larger frame is read in pieces as before.
RECV_SIZE = 4096

UNKNOWN_VARIABLE = "ERROR: unknown getset variable"

#: ``connect((host, port), timeout) -> socket`` — the signature of ``socket.create_connection``.
ConnectFunction = Callable[[tuple[str, int], float], socket.socket]


class DeviceError(HDHomeRunError):
    """The device answered with an error message (``ERROR: …``)."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name

    def is_unknown_variable(self) -> bool:
        """True for ``ERROR: unknown getset variable`` (no such variable or tuner)."""
        return self.message.strip().lower() == UNKNOWN_VARIABLE.lower()


def is_unknown_variable(error: BaseException) -> bool:
    """True if ``error`` is a :class:`DeviceError` for an unknown variable or tuner."""
    return isinstance(error, DeviceError) and error.is_unknown_variable()


class TransportError(HDHomeRunError):
    """The request could not be carried: connection refused or reset, name resolution…"""


class RequestTimeout(TransportError, TimeoutError):
    """The request's deadline passed before the complete reply arrived."""


def parse_address(
    address: str, default_port: int = DEFAULT_PORT, *, allow_port_zero: bool = False
) -> tuple[str, int]:
    """Split ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address (the one
    parser, :func:`otel_bare_metal.address.parse_host_port`, with the device port as default).

    Raises :class:`ValueError` for an empty host or a port outside 1..65535 (0 is
    accepted with ``allow_port_zero``, for listening addresses).
    """
    return parse_host_port(address, default_port, allow_port_zero=allow_port_zero)


def format_address(host: str, port: int) -> str:
    """``host:port``, or ``[v6]:port``."""
    return format_host_port(host, port)


@dataclass(frozen=True)
class _Deadline:
    at: float

    def remaining(self) -> float:
        """Seconds left; raises :class:`RequestTimeout` when none are."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise RequestTimeout("timed out waiting for the device")
        return left


class _Broken(Exception):
    """Internal: a connection that was fine before failed without sending any reply byte."""


class Client:
    """A connection to one HDHomeRun device.

    ``address`` is ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address (port
    65001 by default).  ``timeout`` is the deadline of each request in seconds.
    ``connect`` replaces ``socket.create_connection`` (same signature) and ``sock`` hands
    over an already connected socket (used first; the client closes it).  Without an
    ``address``, a ``sock`` is required and a broken connection cannot be reopened.

    Thread-safe: requests are serialised by a lock.  Use as a context manager or call
    :meth:`close`.
    """

    def __init__(
        self,
        address: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        connect: ConnectFunction | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if address is None and sock is None:
            raise ValueError("need an address or a connected socket")
        self._endpoint: tuple[str, int] | None = (
            parse_address(address) if address is not None else None
        )
        self.timeout = float(timeout)
        self._connect: ConnectFunction = connect or _create_connection
        self._sock: socket.socket | None = sock
        self._pending = b""  # bytes read from the socket past the last frame (the stream's, not yet consumed)
        self._lock = threading.Lock()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` (or ``[v6]:port``) of the device, or ``<socket>``."""
        if self._endpoint is None:
            return "<socket>"
        return format_address(*self._endpoint)

    def close(self) -> None:
        """Close the connection.  The client cannot be used afterwards."""
        with self._lock:
            self._closed = True
            self._drop_connection()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop_connection(self) -> None:
        self._pending = b""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    # -- transport ---------------------------------------------------------------------

    def _open(self, deadline: _Deadline) -> socket.socket:
        if self._endpoint is None:
            raise TransportError("connection lost and no address to reconnect to")
        try:
            sock = self._connect(self._endpoint, deadline.remaining())
        except socket.timeout:
            raise RequestTimeout(f"timed out connecting to {self.address}") from None
        except ConnectionRefusedError:
            raise TransportError(f"connection refused by {self.address}") from None
        except OSError as e:
            raise TransportError(f"cannot connect to {self.address}: {_os_reason(e)}") from e
        return sock

    def _exchange(self, sock: socket.socket, frame: bytes, deadline: _Deadline, reused: bool) -> bytes:
        """Send one frame and read one complete reply frame before the deadline."""
        got_any = False
        try:
            view = memoryview(frame)
            while view:
                sock.settimeout(deadline.remaining())
                sent = sock.send(view)
                view = view[sent:]

            def recv(n: int) -> bytes:
                # One socket read takes a whole reply as it usually arrives (header and payload
                # in one segment); what read_frame has not asked for yet waits in _pending.
                nonlocal got_any
                if self._pending:
                    chunk, self._pending = self._pending[:n], self._pending[n:]
                    got_any = True
                    return chunk
                sock.settimeout(deadline.remaining())
                chunk = sock.recv(max(n, RECV_SIZE))
                if len(chunk) > n:
                    chunk, self._pending = chunk[:n], chunk[n:]
                if chunk:
                    got_any = True
                elif not got_any:
                    if reused:
                        raise _Broken()
                    raise TransportError(f"{self.address} closed the connection without replying")
                return chunk

            return pkt.read_frame(recv)
        except socket.timeout:
            raise RequestTimeout(f"timed out waiting for {self.address}") from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
            if reused and not got_any:
                raise _Broken() from e
            raise TransportError(f"connection to {self.address} lost: {_os_reason(e)}") from e
        except OSError as e:
            raise TransportError(f"connection to {self.address} failed: {_os_reason(e)}") from e

    def request(self, packet: Packet, deadline: float | None = None) -> Packet:
        """Send one packet and return the decoded reply frame (any type), by ``deadline`` (a
        ``time.monotonic()`` value; default: ``timeout`` seconds from now).

        Raises :class:`RequestTimeout`, :class:`TransportError` or a
        :class:`~otel_bare_metal.hdhr.packet.ProtocolError`.  After any failure the
        connection is closed (its state is unknown) and reopened by the next request.
        """
        frame = pkt.encode(packet)
        until = _Deadline(time.monotonic() + self.timeout if deadline is None else deadline)
        with self._lock:
            if self._closed:
                raise TransportError("client is closed")
            for attempt in range(2):
                reused = self._sock is not None
                try:
                    if self._sock is None:
                        self._sock = self._open(until)
                    raw = self._exchange(self._sock, frame, until, reused and attempt == 0)
                    return pkt.decode(raw)
                except _Broken:
                    # The device closed an idle connection: reopen once, same deadline.
                    self._drop_connection()
                    continue
                except BaseException:
                    self._drop_connection()
                    raise
            raise TransportError(f"connection to {self.address} closed twice")  # pragma: no cover

    # -- get ---------------------------------------------------------------------------

    def get(self, name: str, *, deadline: float | None = None) -> str:
        """The value of a variable, e.g. ``get("/sys/model")`` -> ``"hdhomerun4_atsc"``.

        Raises :class:`DeviceError` if the device answers ``ERROR: …``.
        """
        reply = self.request(pkt.getset_request(name), deadline)
        try:
            return _getset_value(reply, name)
        except UnexpectedReplyError:
            # Not the answer to our request: the stream may be out of step; start afresh.
            with self._lock:
                self._drop_connection()
            raise

    # -- high level --------------------------------------------------------------------

    def model(self, *, deadline: float | None = None) -> str:
        """``/sys/model``, e.g. ``hdhomerun4_atsc``."""
        return self.get("/sys/model", deadline=deadline)

    def hwmodel(self, *, deadline: float | None = None) -> str:
        """``/sys/hwmodel``, e.g. ``HDHR4-2US``."""
        return self.get("/sys/hwmodel", deadline=deadline)

    def version(self, *, deadline: float | None = None) -> str:
        """``/sys/version`` (firmware), e.g. ``20220203``."""
        return self.get("/sys/version", deadline=deadline)

    def features(self, *, deadline: float | None = None) -> str:
        """``/sys/features``: lines such as ``channelmap: us-bcast us-cable``."""
        return self.get("/sys/features", deadline=deadline)

    def tuner_debug(self, n: int, *, deadline: float | None = None) -> TunerDebug:
        """``/tunerN/debug`` parsed (raises ParseError if the text is malformed)."""
        return parse_tuner_debug(self.get(f"/tuner{int(n)}/debug", deadline=deadline))


def _getset_value(reply: Packet, name: str) -> str:
    """The value of a get reply, or the device's error as :class:`DeviceError`."""
    if reply.type != pkt.TYPE_GETSET_REPLY:
        raise UnexpectedReplyError(
            f"reply type 0x{reply.type:04x}, expected 0x{pkt.TYPE_GETSET_REPLY:04x}"
        )
    echoed = reply.get_string(pkt.TAG_GETSET_NAME)
    if echoed is not None and echoed.lower() != name.lower():
        raise UnexpectedReplyError(f"reply is for {echoed!r}, not {name!r}")
    # Like libhdhomerun's hdhomerun_control_get_set: the first value or error tag in the
    # reply decides, so a value followed by an error tag is a value.
    for tag, raw in reply.tags:
        if tag == pkt.TAG_GETSET_VALUE:
            return pkt.string_value(raw)
        if tag == pkt.TAG_ERROR_MESSAGE:
            raise DeviceError(pkt.string_value(raw), name)
    raise UnexpectedReplyError(f"reply for {name!r} has neither a value nor an error")


def _create_connection(address: tuple[str, int], timeout: float) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - not every socket type supports it
        pass
    return sock


def _os_reason(e: OSError) -> str:
    if isinstance(e, socket.gaierror):
        return f"cannot resolve host ({e.strerror or e})"
    return e.strerror or str(e) or type(e).__name__
