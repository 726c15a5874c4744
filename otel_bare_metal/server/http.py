"""The HTTP/1.1 transport behind ``/metrics``, ``/probe``, ``/healthz`` and the landing page.

Routes map a path to a function of the :class:`Request`. Requests are parsed by
`h11 <https://h11.readthedocs.io/>`_ (sans-I/O: it is fed the bytes this module reads), the only HTTP/1.1
parser here; responses, always framed by ``Content-Length``, are written by :func:`_serialize` (h11's
writer and state machine cost about 40 µs per response, which alone made a scrape 10 % slower), and each
request cycle gets a fresh parser. This module owns the sockets, the threads and the limits. It knows nothing of
``--web.config.file``: TLS, basic auth and extra response headers come in as callables
(``ssl_context()``, ``verify_peer(sock)``, ``authorize(request)``, ``response_headers()``).

How it stays up under slow or hostile clients:

* **No thread waits for a request head.** One thread (``http-front``) runs a selector over every
  listening socket and every connection that has not yet sent a complete request head: new ones, TLS
  handshakes, idle keep-alive ones. Such a connection costs a descriptor and its parser, not a thread.
  A thread is started only for a complete request; it runs the route, writes the response, serves the
  next request itself if it is there within 2 ms (a client scraping back to back), and otherwise hands
  the connection back to the front thread (keep-alive).
* **One deadline per request head.** A new connection must finish its TLS handshake and its whole
  head within :attr:`Limits.head_timeout` of being accepted, however the bytes trickle in. A
  kept-alive connection may stay idle for :attr:`Limits.idle_timeout`; once the next head starts it
  has ``head_timeout`` to finish it. Past its deadline a connection is closed.
* **A bounded head, parsed once.** Each read is fed to the connection's h11 parser, which searches for
  the end of the head only in what it has not searched yet, so a head sent a byte at a time costs time
  linear in its size; and a head still incomplete after a few small reads rests 20 ms between reads, so a
  client sending one byte per segment wakes the server 50 times a second, not once per byte. A head
  larger than :attr:`Limits.max_header_bytes` gets ``431`` and the
  connection is closed, so buffered bytes per connection are bounded.
* **Refused as RFC 9112 says.** A malformed request line or header, a TAB or CR in the
  request-target, a bad or conflicting ``Content-Length``, a missing or repeated ``Host`` (HTTP/1.1) and
  an unparsable absolute-form target all get ``400`` and a close.
* **A bounded number of connections** (``--web.max-connections``, across all listeners). When all are
  taken, a new connection makes room by closing the connection that has been idle longest: one that has
  sent nothing since it was accepted, or a kept-alive one waiting for its next request. Only when every
  connection is busy (sending a head, or in a request) is the newcomer closed at once by the front
  thread: no thread, no buffer. So a client holding connections open without using them cannot keep a
  scraper out; one sending heads is cut at each head's deadline.
* **A bounded number of requests per route.** The ``scrape_paths`` (``/metrics``, ``/probe``) share
  ``--web.max-requests`` (node_exporter's flag) unless ``route_limits`` gives a path a budget of its own;
  past it a request gets ``503`` with promhttp's message. ``/healthz`` and the landing page are not
  counted.
* **No busy loop when descriptors run out.** ``accept`` failing with ``EMFILE``/``ENFILE`` pauses the
  listeners for 5 ms, doubling up to 1 s, as Go's ``net/http`` does. :func:`raise_open_files_limit`
  lifts the soft ``RLIMIT_NOFILE`` to the hard one at start, as the Go runtime does.
* **Nothing leaks a slot.** Whatever fails while a connection is accepted (its TLS context, a socket
  option), the connection is closed and its slot given back.
* **Graceful stop.** :meth:`HTTPServer.shutdown` stops accepting, closes waiting connections and lets
  requests in flight finish within a grace period.

A client that half-closes its side (``shutdown(SHUT_WR)``) after a complete request head is answered,
with ``Connection: close``. HTTP/1.0 clients get one response per connection.
"""

from __future__ import annotations

import email.utils
import errno
import gzip
import http
import logging
import re
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence, Union

import h11

from otel_bare_metal.logutil import RateLimitedLog
from otel_bare_metal.server.listen import (
    address_of,
    adopt,
    listen,
    open_files_limit,
    parse_listen_address,
    raise_open_files_limit,
)
from otel_bare_metal.server.messages import (
    BadTarget,
    Handler,
    Request,
    Response,
    accepts_gzip,
    healthz,
    landing_page,
    split_target,
)

__all__ = [
    "ConcurrencyLimit",
    "HTTPServer",
    "Handler",
    "Limits",
    "Listener",
    "Request",
    "Response",
    "accepts_gzip",
    "healthz",
    "landing_page",
    "parse_listen_address",
    "raise_open_files_limit",
]

log = logging.getLogger(__name__)
_errors = RateLimitedLog(log)  # a client may cause these at will, before any authentication

SERVER_HEADER = "otel-bare-metal"  # no version: it tells an attacker nothing they need

Listener = Union[str, socket.socket]  # "host:port" to bind, or a socket already bound and listening


@dataclass(frozen=True)
class Limits:
    """Bounds on what clients may hold. See the module docstring."""

    max_connections: int = 2048  # --web.max-connections; 0: unlimited (still capped by RLIMIT_NOFILE)
    max_requests: int = 40  # --web.max-requests: scrapes at once; 0: unlimited
    head_timeout: float = 10.0  # TLS handshake + whole request head, from accept
    idle_timeout: float = 30.0  # a kept-alive connection waiting for its next request
    write_timeout: float = 30.0  # the whole response (sendall: one total timeout since Python 3.5), however slowly read
    max_header_bytes: int = 32 * 1024  # request line + headers
    accept_burst: int = 64  # connections accepted per listener per wake-up, so no listener starves the rest
    requests_per_thread: int = 100  # back-to-back requests one thread serves before the front takes over again


class ConcurrencyLimit:
    """At most ``limit`` holders at once (0: unlimited); :meth:`try_enter` never waits. ``what`` names
    the holders in the refusal ("Limit of concurrent requests reached")."""

    def __init__(self, limit: int, what: str = "requests"):
        self.limit = limit
        self.what = what
        self.in_use = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.limit and self.in_use >= self.limit:
                return False
            self.in_use += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_use -= 1

    def refusal(self) -> Response:
        """promhttp's answer past the limit, as node_exporter gives it."""
        return Response(503, f"Limit of concurrent {self.what} reached ({self.limit}), try again later.\n".encode())


_LISTENER = object()
_WAKE = object()
_BACKOFF_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# How long a request thread waits for the next request on its connection before handing it back to the
# front thread: long enough for a client that asks again as soon as it has read the answer.
NEXT_REQUEST_WAIT = 0.002
_READ_SIZE = 16384
# A head still incomplete after this many reads, whose last read was this small, is being trickled: its
# connection rests for PARK_SECONDS before it is read again, so bytes sent one per segment are read in
# batches instead of one wake-up each (a head in one or two segments, as clients send them, never rests).
TRICKLE_READS = 4
TRICKLE_BYTES = 512
PARK_SECONDS = 0.02


class _Conn:
    """A client connection and its HTTP/1.1 state (the h11 parser holds what was read of the next head)."""

    __slots__ = ("sock", "peer", "h11", "deadline", "started", "handshaking", "events", "eof", "reads")

    def __init__(self, sock: socket.socket, peer: str, deadline: float, max_head: int):
        self.sock = sock
        self.peer = peer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        self.deadline = deadline
        self.started = False  # a byte of the current head has arrived
        self.handshaking = False
        self.events = 0
        self.eof = False  # the client shut down its sending side
        self.reads = 0  # reads of the current head


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The ``Date`` header value, made once a second."""
    global _date_cache
    now = int(time.time())
    second, text = _date_cache
    if second != now:
        text = email.utils.formatdate(now, usegmt=True)
        _date_cache = (now, text)
    return text


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _serialize(status: int, fields: Iterable[tuple[str, str]], body: bytes, checked: int = 0) -> bytes:
    """A response: status line, ``fields`` and ``body``, which the caller frames with Content-Length.
    The first ``checked`` fields are this module's own; the others (from routes and the web config,
    which checks its values at load) are refused here if they would split the head."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}\r\n"]
    for i, (name, value) in enumerate(fields):
        if i >= checked and ("\r" in value or "\n" in value or not _TOKEN.fullmatch(name)):
            raise ValueError(f"response header {name!r} cannot be sent")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + body


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _error_bytes(status: int, text: str) -> bytes:
    """A plain-text error response that closes the connection."""
    body = f"{text}\n".encode()
    return _serialize(status, [
        ("Server", SERVER_HEADER),
        ("Date", _http_date()),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ], body)  # fmt: skip


class HTTPServer:
    """Serves ``routes`` on each of ``listeners`` from background threads until :meth:`shutdown`.

    ``listeners`` are addresses to bind (``host:port``, ``:port``, ``[v6]:port``) or sockets already bound
    and listening (systemd socket activation); the server owns and closes both.
    ``scrape_paths`` share ``limits.max_requests``; ``route_limits`` gives a path its own budget instead
    (a number, 0: unlimited; or a :class:`ConcurrencyLimit`, whose ``what`` its refusals name);
    ``limit_key(request)`` names the budget a request counts against when its path alone does not
    (``/metrics?target=`` is a probe). ``open_paths`` are served without ``authorize``.

    The web config reaches the transport as callables: ``ssl_context()`` (None: plain HTTP) is asked at
    each accept, ``verify_peer(tls_socket)`` after each handshake (raise to refuse the client),
    ``authorize(request)`` before each route (None lets it through; a response is sent instead),
    ``response_headers()`` for each response. ``ssl_context`` and ``verify_peer`` run on the front thread
    and must not block; the others run on the request's thread.

    Raises ``OSError`` when an address cannot be bound (every socket opened so far is closed again) and
    ``ValueError`` for a malformed address."""

    def __init__(
        self,
        listeners: Listener | Sequence[Listener],
        routes: Mapping[str, Handler],
        *,
        limits: Limits = Limits(),
        scrape_paths: Iterable[str] = (),
        route_limits: Mapping[str, int | ConcurrencyLimit] | None = None,
        ssl_context: Callable[[], ssl.SSLContext | None] | None = None,
        verify_peer: Callable[[ssl.SSLSocket], None] | None = None,
        authorize: Callable[[Request], Response | None] | None = None,
        response_headers: Callable[[], Mapping[str, str]] | None = None,
        open_paths: Iterable[str] = ("/healthz",),
        limit_key: Callable[[Request], str] | None = None,
    ):
        given = [listeners] if isinstance(listeners, (str, socket.socket)) else list(listeners)
        if not given:
            raise ValueError("no listen address")
        # Each address is parsed here unless it already is a ListenAddress (config.load parsed it).
        given = [parse_listen_address(item) if isinstance(item, str) else item for item in given]
        self.routes = dict(routes)
        self.limits = limits
        self.open_paths = frozenset(open_paths)
        self._ssl_context = ssl_context
        self._verify_peer = verify_peer
        self._authorize = authorize
        self._response_headers = response_headers
        self._limit_key = limit_key
        shared = ConcurrencyLimit(limits.max_requests)
        self.route_limits: dict[str, ConcurrencyLimit] = {path: shared for path in scrape_paths}
        for path, limit in (route_limits or {}).items():
            self.route_limits[path] = limit if isinstance(limit, ConcurrencyLimit) else ConcurrencyLimit(limit)
        self.max_connections = self._effective_max_connections(limits.max_connections)
        self._listeners: list[socket.socket] = []
        self.addresses: list[str] = []
        try:
            for item in given:
                sock = listen(item) if isinstance(item, str) else adopt(item)
                self._listeners.append(sock)
                self.addresses.append(item if isinstance(item, str) else address_of(sock))
        except BaseException:
            for sock in self._listeners:
                sock.close()
            for item in given:  # adopted sockets are ours to close, even those not reached
                if isinstance(item, socket.socket):
                    item.close()
            raise
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._returned: deque[_Conn] = deque()  # handed back by request threads
        self._waiting: dict[int, _Conn] = {}  # registered in the selector, keyed by descriptor
        self._idle: dict[_Conn, None] = {}  # waiting and silent since accepted or since their last response, oldest first
        self._parked: dict[_Conn, float] = {}  # trickling heads resting until a time, earliest first
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._open = 0  # connections open, waiting or in a request thread
        self._busy = 0  # request threads running
        self._refused = 0
        self._evicted = 0
        self._stopping = False
        self._paused_until = 0.0
        self._backoff = 0.0
        self._thread: threading.Thread | None = None

    @staticmethod
    def _effective_max_connections(wanted: int) -> int:
        limit = open_files_limit()
        if limit is None:
            return wanted
        room = max(16, limit - 64)  # keep descriptors for files, devices and the OTLP exporter
        if wanted == 0 or wanted > room:
            if wanted:  # loud only when asked for explicitly; the default just fits itself to the limit
                (log.warning if wanted != Limits.max_connections else log.info)(
                    "--web.max-connections is above what the open files limit allows; using the lower figure",
                    extra={"wanted": wanted, "using": room, "open_files_limit": limit},
                )
            return room
        return wanted

    @property
    def port(self) -> int:
        """The port of the first listener (useful with port 0)."""
        return self._listeners[0].getsockname()[1]

    @property
    def ports(self) -> list[int]:
        return [sock.getsockname()[1] for sock in self._listeners]

    @property
    def serving(self) -> bool:
        """The front thread (accepting, reading request heads) is running."""
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        """Connections waiting with nothing sent since they were accepted or since their last
        response: the ones a new connection may close when every slot is taken."""
        return len(self._idle)

    @property
    def refused_connections(self) -> int:
        """Connections closed at accept because every slot was busy."""
        return self._refused

    @property
    def evicted_connections(self) -> int:
        """Idle connections closed to make room for a new one."""
        return self._evicted

    def start(self) -> "HTTPServer":
        for sock in self._listeners:
            self._selector.register(sock, selectors.EVENT_READ, _LISTENER)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._thread = threading.Thread(target=self._run, name="http-front", daemon=True)
        self._thread.start()
        return self

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop accepting; close every connection not in a request; give requests in flight up to
        ``grace`` seconds to finish (their connections close afterwards)."""
        with self._lock:
            self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
        else:
            self._close_front()
        deadline = time.monotonic() + grace
        with self._done:
            while self._busy and time.monotonic() < deadline:
                self._done.wait(deadline - time.monotonic())
            left = self._busy
        if left:
            log.warning("requests still running at shutdown; not waiting longer", extra={"requests": left, "grace_seconds": grace})

    # --- the front thread: accept, TLS handshakes, request heads ------------------------------------

    def _run(self) -> None:
        try:
            next_sweep = 0.0
            while not self._stopping:
                now = time.monotonic()
                if self._paused_until and now >= self._paused_until:
                    self._paused_until = 0.0
                    for sock in self._listeners:
                        self._selector.register(sock, selectors.EVENT_READ, _LISTENER)
                timeout = 0.25
                if self._parked:
                    timeout = min(timeout, max(0.0, next(iter(self._parked.values())) - now))
                for key, _ in self._selector.select(timeout=timeout):
                    if self._stopping:
                        break
                    try:
                        if key.data is _LISTENER:
                            self._accept(key.fileobj)  # type: ignore[arg-type]  # registered as a socket; the selector types it as FileDescriptorLike
                        elif key.data is _WAKE:
                            self._take_returned()
                        else:
                            self._on_ready(key.data)
                    except Exception as e:  # a bug with one connection must not deafen the server
                        if _errors.allow(("front", type(e))):
                            log.exception("HTTP front loop: unexpected error")
                        if isinstance(key.data, _Conn):
                            self._close(key.data)
                now = time.monotonic()
                while self._parked:
                    conn, until = next(iter(self._parked.items()))
                    if until > now:
                        break
                    del self._parked[conn]
                    self._watch(conn, selectors.EVENT_READ)
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + 0.25
        except Exception:  # never leave the server deaf without a word
            log.exception("HTTP front loop failed")
        finally:
            self._close_front()

    def _close_front(self) -> None:
        for sock in self._listeners:
            try:
                sock.close()
            except OSError:
                pass
        for conn in [*self._waiting.values(), *self._parked]:
            self._close(conn)
        while self._returned:
            self._close(self._returned.popleft())
        try:
            self._selector.close()
        except (OSError, RuntimeError):
            pass
        for sock in (self._wake_r, self._wake_w):  # a late wake-up from a request thread then fails quietly
            sock.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # buffer full: a wake-up is pending anyway; or closed at shutdown
            pass

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(self.limits.accept_burst):
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _BACKOFF_ERRNOS:
                    self._pause_accepting(e)
                return  # ECONNABORTED and the like: that client is gone
            self._backoff = 0.0
            self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: object) -> None:
        """Give ``sock`` a slot (making room if need be) and start watching it; whatever fails, the
        socket is closed and the slot given back."""
        with self._lock:
            full = bool(self.max_connections) and self._open >= self.max_connections
            if not full:
                self._open += 1
        if full:
            if not self._idle:
                self._refused += 1
                sock.close()  # cheap: no thread, no buffer
                return
            victim = next(iter(self._idle))  # idle longest
            log.debug("all connections taken; closing the one idle longest", extra={"client": victim.peer})
            self._evicted += 1
            self._close(victim)
            with self._lock:
                self._open += 1
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address or "unix")
        conn = _Conn(sock, peer, time.monotonic() + self.limits.head_timeout, self.limits.max_header_bytes)
        try:
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body: no 40 ms wait
            except OSError:  # not TCP (a Unix socket handed over by systemd)
                pass
            ctx = self._ssl_context() if self._ssl_context is not None else None
            if ctx is not None:
                conn.sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                conn.handshaking = True
            self._watch(conn, selectors.EVENT_READ)
        except Exception as e:
            if isinstance(e, OSError):
                log.debug("connection failed at accept", extra={"client": peer, "err": str(e)})
            elif _errors.allow(("accept", type(e))):
                log.error("cannot set up an accepted connection; closing it",
                          extra={"client": peer, "err": f"{type(e).__name__}: {e}"})  # fmt: skip
            self._close(conn)
            return
        self._idle[conn] = None

    def _pause_accepting(self, error: OSError) -> None:
        self._backoff = min(1.0, self._backoff * 2) if self._backoff else 0.005
        log.debug("accept failed; pausing", extra={"err": str(error), "pause_seconds": self._backoff})
        if not self._paused_until:
            for sock in self._listeners:
                self._selector.unregister(sock)
        self._paused_until = time.monotonic() + self._backoff

    def _watch(self, conn: _Conn, events: int) -> None:
        fd = conn.sock.fileno()
        if fd in self._waiting:
            if conn.events != events:
                self._selector.modify(conn.sock, events, conn)
        else:
            self._selector.register(conn.sock, events, conn)
            self._waiting[fd] = conn
        conn.events = events

    def _unwatch(self, conn: _Conn) -> None:
        self._idle.pop(conn, None)
        fd = conn.sock.fileno()
        if self._waiting.pop(fd, None) is not None:
            self._selector.unregister(conn.sock)

    def _close(self, conn: _Conn) -> None:
        self._idle.pop(conn, None)
        self._parked.pop(conn, None)
        try:
            if conn.sock.fileno() >= 0:
                self._unwatch(conn)
        except (KeyError, ValueError, OSError):
            pass
        self._close_from_thread(conn)

    def _take_returned(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while self._returned:
            conn = self._returned.popleft()
            try:
                self._watch(conn, selectors.EVENT_READ)
            except (OSError, ValueError):
                self._close(conn)
                continue
            if conn.h11.trailing_data[0]:  # a pipelined request came with the previous one
                conn.started = True
                conn.deadline = min(conn.deadline, time.monotonic() + self.limits.head_timeout)
                self._check_head(conn)
            else:
                self._idle[conn] = None

    def _sweep(self, now: float) -> None:
        for conn in [c for c in (*self._waiting.values(), *self._parked) if c.deadline <= now]:
            log.debug("request head deadline passed; closing", extra={"client": conn.peer, "started": conn.started})
            self._close(conn)

    def _on_ready(self, conn: _Conn) -> None:
        self._idle.pop(conn, None)  # it sent something, or closed
        if conn.handshaking:
            try:
                conn.sock.do_handshake()  # type: ignore[attr-defined]  # handshaking: the socket is an SSLSocket
                if self._verify_peer is not None:
                    self._verify_peer(conn.sock)  # type: ignore[arg-type]  # handshaking: the socket is an SSLSocket
            except ssl.SSLWantReadError:
                self._watch(conn, selectors.EVENT_READ)
                return
            except ssl.SSLWantWriteError:
                self._watch(conn, selectors.EVENT_WRITE)
                return
            except (OSError, ValueError) as e:  # ssl.SSLError included: plain HTTP, bad certificate, ...
                log.debug("TLS handshake failed", extra={"client": conn.peer, "err": str(e)})
                self._close(conn)
                return
            conn.handshaking = False
            self._watch(conn, selectors.EVENT_READ)
        read = 0
        while read <= self.limits.max_header_bytes:  # TLS: drain what is decrypted, the selector won't tell
            try:
                data = conn.sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                break
            except ssl.SSLWantWriteError:
                self._watch(conn, selectors.EVENT_WRITE)
                return
            except OSError as e:
                log.debug("client connection failed", extra={"client": conn.peer, "err": str(e)})
                self._close(conn)
                return
            if not data:
                conn.eof = True
                conn.h11.receive_data(b"")
                break
            if not conn.started:
                data = data.lstrip(b"\r\n")  # RFC 9112 §2.2: empty lines before a request line are skipped
                if not data:
                    continue
                conn.started = True
                conn.deadline = min(conn.deadline, time.monotonic() + self.limits.head_timeout)
            read += len(data)
            conn.h11.receive_data(data)
            if len(data) < _READ_SIZE and not isinstance(conn.sock, ssl.SSLSocket):
                break  # the kernel had no more: save a read that would only say so
        self._watch(conn, selectors.EVENT_READ)
        if self._check_head(conn) and conn.started:
            conn.reads += 1
            if conn.reads >= TRICKLE_READS and read < TRICKLE_BYTES:
                self._unwatch(conn)
                self._parked[conn] = time.monotonic() + PARK_SECONDS

    def _check_head(self, conn: _Conn) -> bool:
        """Start a request thread if ``conn`` has a complete head; True while it still needs bytes."""
        try:
            event = conn.h11.next_event()
        except h11.RemoteProtocolError as e:
            self._refuse(conn, e.error_status_hint, str(e))
            return False
        if event is h11.NEED_DATA:
            if conn.eof:
                self._close(conn)
                return False
            return True
        if not isinstance(event, h11.Request):  # ConnectionClosed: a client that left between requests
            self._close(conn)
            return False
        self._unwatch(conn)
        conn.started = False
        conn.reads = 0
        with self._lock:
            self._busy += 1
        try:
            threading.Thread(target=self._serve, args=(conn, event), name="http-request", daemon=True).start()
        except RuntimeError as e:  # can't start a new thread
            with self._lock:
                self._busy -= 1
            log.warning("cannot start a request thread", extra={"err": str(e)})
            self._refuse(conn, 503, "Service Unavailable")
        return False

    def _refuse(self, conn: _Conn, status: int, text: str) -> None:
        log.debug("request refused", extra={"client": conn.peer, "status": status, "reason": text})
        try:
            conn.sock.send(_error_bytes(status, f"{status} {_reason(status)}"))  # best effort
        except (OSError, ValueError):
            pass
        self._close(conn)

    # --- request threads ------------------------------------------------------------------------

    def _serve(self, conn: _Conn, event: h11.Request) -> None:
        keep = False
        try:
            for served in range(1, self.limits.requests_per_thread + 1):
                keep = self._serve_one(conn, event, first=served == 1)
                if not keep or self._stopping:
                    keep = False
                    break
                if served == self.limits.requests_per_thread:
                    break
                # A client that sends its next request at once (a benchmark, a pipeline) is served on this
                # thread; anything slower goes back to the front thread, which owns the waiting.
                next_event = self._next_request(conn)
                if next_event is None:
                    break
                event = next_event
        except OSError:
            keep = False  # the client went away while we looked for its next request
        except Exception as e:
            keep = False
            if _errors.allow(("serve", type(e))):
                log.exception("error serving a connection", extra={"client": conn.peer})
        finally:
            if keep:
                try:
                    conn.sock.setblocking(False)
                except OSError:
                    keep = False
            with self._lock:  # decided under the lock: after shutdown starts, nothing goes back to the front
                self._busy -= 1
                self._done.notify_all()
                keep = keep and not self._stopping
                if keep:
                    conn.started = False
                    conn.deadline = time.monotonic() + self.limits.idle_timeout
                    self._returned.append(conn)
            if keep:
                self._wake()
            else:
                self._close_from_thread(conn)

    def _next_request(self, conn: _Conn) -> h11.Request | None:
        """The next request if it is already buffered or arrives within a moment; None hands the
        connection back to the front thread. Raises OSError when the client is gone."""
        try:
            # Most often nothing is buffered: read first rather than ask the parser what it cannot have.
            event = conn.h11.next_event() if conn.eof or conn.h11.trailing_data[0] else h11.NEED_DATA
            if event is h11.NEED_DATA and not conn.eof:
                conn.sock.settimeout(NEXT_REQUEST_WAIT)
                try:
                    data = conn.sock.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
                    return None
                if not data:
                    raise ConnectionResetError("closed by the client")
                conn.h11.receive_data(data)
                event = conn.h11.next_event()
        except h11.RemoteProtocolError:
            return None  # the front thread answers it (the parser stays in error)
        if isinstance(event, h11.ConnectionClosed):
            raise ConnectionResetError("closed by the client")
        return event if isinstance(event, h11.Request) else None

    def _serve_one(self, conn: _Conn, event: h11.Request, first: bool = True) -> bool:
        """Answer one request; whether the connection stays open. ``first``: the request came through the
        front thread (not read back to back by this one), so look whether the client has half-closed."""
        path = "?"
        close = True
        try:
            try:
                request, close = self._request(conn, event)
                path = request.path
            except _BadRequest as e:
                log.debug("request refused", extra={"client": conn.peer, "status": e.status, "reason": str(e)})
                data = _error_bytes(e.status, f"{e.status} {e}")
                close = True
            else:
                close = close or self._half_closed(conn, peek=first)
                if request.method not in ("GET", "HEAD"):
                    close = True
                    response = Response(405, b"405 method not allowed\n", headers={"Allow": "GET, HEAD"})
                else:
                    response = self._respond(request)
                data = self._encode(request, response, close)
            conn.sock.settimeout(self.limits.write_timeout)  # blocking, with a timeout
            conn.sock.sendall(data)
        except OSError as e:  # the client went away or stopped reading: nothing to answer, nobody to tell
            log.debug("client disconnected before the response was sent",
                      extra={"client": conn.peer, "path": path, "err": str(e) or type(e).__name__})  # fmt: skip
            return False
        except Exception as e:
            if _errors.allow(("request", type(e))):
                log.exception("error serving a request", extra={"client": conn.peer, "path": path})
            return False
        if close:
            return False
        # h11 parses; responses are written here (see _serialize), so its state machine never sees them:
        # the next request gets a new parser, fed whatever was read past this one.
        data, closed = conn.h11.trailing_data
        conn.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        if data:
            conn.h11.receive_data(data)
        if closed:
            conn.h11.receive_data(b"")
        return True

    @staticmethod
    def _half_closed(conn: _Conn, peek: bool) -> bool:
        """Whether the client has shut down its sending side after this request (then its answer closes
        the connection; pipelined requests read before the end are answered first). ``peek``: look at
        the socket too (a syscall; back-to-back requests skip it: the next read tells soon enough)."""
        if peek and not conn.eof and not isinstance(conn.sock, ssl.SSLSocket):  # no peeking under TLS
            try:
                conn.sock.setblocking(False)  # else Python polls for up to the socket's timeout first
                conn.eof = conn.sock.recv(1, socket.MSG_PEEK) == b""
            except OSError:  # nothing there yet (EAGAIN), or reset: the send will tell
                pass
        return conn.eof and not conn.h11.trailing_data[0]

    def _request(self, conn: _Conn, event: h11.Request) -> tuple[Request, bool]:
        """The route's view of ``event``, and whether the connection must close after the answer (a
        body follows, which is never read, or the client asked); :class:`_BadRequest` for what RFC 9112
        says to refuse that h11 lets through."""
        if event.http_version != b"1.1":
            if event.http_version != b"1.0":  # h11 takes any 1-digit "HTTP/x.y" for HTTP/1.1
                raise _BadRequest(505, "unsupported HTTP version")
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("ascii")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        method = event.method.decode("ascii")
        try:
            path, query = split_target(method, event.target.decode("ascii"))
        except (BadTarget, UnicodeDecodeError) as e:
            raise _BadRequest(400, str(e)) from None
        # h11 has checked the framing headers: any body is announced by one of these.
        close = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"
        if event.http_version != b"1.1":
            close = True  # HTTP/1.0: one response per connection, as h11 would have it
        elif "connection" in headers and "close" in (t.strip().lower() for t in headers["connection"].split(",")):
            close = True
        request = Request(method=method, path=path, query=query, headers=headers, peer=conn.peer,
                          received=time.monotonic())  # fmt: skip
        return request, close

    def _close_from_thread(self, conn: _Conn) -> None:
        try:
            conn.sock.close()
        except OSError:
            pass
        with self._lock:
            self._open -= 1

    def _respond(self, request: Request) -> Response:
        try:
            if self._authorize is not None and request.path not in self.open_paths:
                refusal = self._authorize(request)
                if refusal is not None:
                    return refusal
            handler = self.routes.get(request.path)
            if handler is None:
                return Response(404, b"404 page not found\n")
        except Exception as e:
            if _errors.allow(("authorize", type(e))):
                log.exception("error authorizing a request", extra={"path": request.path})
            return Response(500, b"500 internal server error\n")
        limit = self.route_limits.get(request.path if self._limit_key is None else self._limit_key(request))
        if limit is not None and not limit.try_enter():
            return limit.refusal()
        try:
            return handler(request)
        except Exception:
            log.exception("error serving a request", extra={"path": request.path})
            return Response(500, b"500 internal server error\n")
        finally:
            if limit is not None:
                limit.leave()

    def _encode(self, request: Request, response: Response, close: bool) -> bytes:
        body = response.body
        extra = self._response_headers() if self._response_headers is not None else {}
        headers = {**extra, **response.headers}
        if len(body) > 512 and accepts_gzip(request.header("accept-encoding")):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        fields = [
            ("Server", SERVER_HEADER),
            ("Date", _http_date()),
            ("Content-Length", str(len(body))),  # for HEAD too: what GET would have sent (RFC 9110 §9.3.2)
            *(("Connection", "close"),) * close,
            ("Content-Type", response.content_type),
            *headers.items(),
        ]
        return _serialize(response.status, fields, b"" if request.method == "HEAD" else body, checked=3 + close)
