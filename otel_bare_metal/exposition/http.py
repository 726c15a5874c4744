"""The HTTP/1.1 server behind ``/metrics``, ``/probe``, ``/healthz`` and the landing page.

Routes map a path to a function of the :class:`Request`. ``/metrics`` content negotiation is done by
the page (text or OpenMetrics); this module adds gzip when the client accepts it, basic auth and the
configured headers from ``--web.config.file``, a landing page and ``/healthz``.

How it stays up under slow or hostile clients:

* **No thread waits for a request head.** One thread (``http-front``) runs a selector over every
  listening socket and every connection that has not yet sent a complete request head: new ones, TLS
  handshakes, idle keep-alive ones. Such a connection costs a descriptor and its buffer, not a thread.
  A thread is started only for a complete request; it runs the route, writes the response, serves the
  next request itself if it is there within 2 ms (a client scraping back to back), and otherwise hands
  the connection back to the front thread (keep-alive).
* **One deadline per request head.** A new connection must finish its TLS handshake and its whole
  head within :attr:`Limits.head_timeout` of being accepted, however the bytes trickle in. A
  kept-alive connection may stay idle for :attr:`Limits.idle_timeout`; once the next head starts it
  has ``head_timeout`` to finish it. Past its deadline a connection is closed.
* **A bounded head.** A head larger than :attr:`Limits.max_header_bytes` gets ``431`` and the
  connection is closed, so buffered bytes per connection are bounded.
* **A bounded number of connections** (``--web.max-connections``, across all listeners). Past it a
  new connection is accepted and closed at once by the front thread: no thread, no buffer.
* **A bounded number of scrapes** (``--web.max-requests``, node_exporter's flag): past it a scrape gets
  ``503`` with promhttp's message. ``/healthz`` and the landing page are not counted.
* **No busy loop when descriptors run out.** ``accept`` failing with ``EMFILE``/``ENFILE`` pauses the
  listeners for 5 ms, doubling up to 1 s, as Go's ``net/http`` does. :func:`raise_open_files_limit`
  lifts the soft ``RLIMIT_NOFILE`` to the hard one at start, as the Go runtime does.
* **Graceful stop.** :meth:`HTTPServer.shutdown` stops accepting, closes waiting connections and lets
  requests in flight finish within a grace period.
"""

from __future__ import annotations

import collections
import email.utils
import errno
import gzip
import html
import http
import logging
import re
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence
from urllib.parse import parse_qs, urlsplit

from otel_bare_metal.address import parse_listen_address
from otel_bare_metal.exposition.webconfig import UNAUTHORIZED_HEADERS, WebConfigWatcher, check_client_sans

log = logging.getLogger(__name__)

SERVER_HEADER = "otel-bare-metal"  # no version: it tells an attacker nothing they need


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


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


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110 §12.5.3: ``q=0`` means "not acceptable";
    ``*`` covers gzip unless gzip is listed on its own)."""
    gzip_q: float | None = None
    star_q: float | None = None
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == "*":
            star_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return star_q is not None and star_q > 0


def raise_open_files_limit() -> tuple[int, int] | None:
    """Lift the soft ``RLIMIT_NOFILE`` to the hard limit, as the Go runtime does at start (1 024 is a
    common soft limit, which a few hundred slow clients exhaust). Returns (old, new), or None where
    there is no such limit."""
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        log.warning("cannot raise the open files limit", extra={"soft": soft, "hard": hard, "err": str(e)})
        return soft, soft
    return soft, hard


def _open_files_limit() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _family(host: str) -> tuple[int, str]:
    if host == "":
        return (socket.AF_INET6, "::") if socket.has_ipv6 and _ipv6_works() else (socket.AF_INET, "0.0.0.0")
    if ":" in host:
        return socket.AF_INET6, host
    return socket.AF_INET, host


def _ipv6_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
        return True
    except OSError:
        return False


def _listen(address: str) -> socket.socket:
    parsed = parse_listen_address(address)
    host, port = parsed.host, parsed.port
    family, bind_host = _family(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and bind_host == "::":
            try:  # serve IPv4 and IPv6 on "::"
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        sock.bind((bind_host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as e:  # e.g. the port is taken: say which address
        sock.close()
        raise OSError(e.errno, f"{address}: {e.strerror or e}") from None
    except BaseException:
        sock.close()
        raise
    return sock


# A head ends at the first empty line; bare LF line ends are accepted, as Go and http.server do.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_LISTENER = object()
_WAKE = object()
_BACKOFF_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# How long a request thread waits for the next request on its connection before handing it back to the
# front thread: long enough for a client that asks again as soon as it has read the answer.
NEXT_REQUEST_WAIT = 0.002


class _Conn:
    """A client connection and what has been read of its next request head."""

    __slots__ = ("sock", "peer", "buf", "deadline", "started", "handshaking", "sans", "events")

    def __init__(self, sock: socket.socket, peer: str, deadline: float):
        self.sock = sock
        self.peer = peer
        self.buf = bytearray()
        self.deadline = deadline
        self.started = False  # a byte of the current head has arrived
        self.handshaking = False
        self.sans: tuple[str, ...] | None = None
        self.events = 0


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _parse_head(head: bytes) -> tuple[Request, str, bool]:
    """(request, HTTP version, whether it carries a body) or :class:`_BadRequest`."""
    lines = head.decode("latin-1").split("\n")
    request_line = lines[0].rstrip("\r")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise _BadRequest(400, "malformed method")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequest(505 if version.startswith("HTTP/") else 400, "unsupported HTTP version")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):  # also refuses obsolete line folding
            raise _BadRequest(400, "malformed header line")
        name = name.lower()
        value = value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value  # RFC 9110 §5.3
    body = headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers
    url = urlsplit(target)
    return Request(method=method, path=url.path, query=parse_qs(url.query), headers=headers), version, body


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


def _serialize(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _plain_response(status: int, text: str, keep_alive: bool = False) -> bytes:
    body = f"{text}\n".encode()
    headers = [
        ("Server", SERVER_HEADER),
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ]
    if not keep_alive:
        headers.append(("Connection", "close"))
    return _serialize(status, headers, body)


class HTTPServer:
    """Serves ``routes`` on each of ``addresses`` from background threads until :meth:`shutdown`.

    ``scrape_paths`` are the routes counted against ``limits.max_requests`` (``/metrics``, ``/probe``).
    Raises ``OSError`` when an address cannot be bound (every socket opened so far is closed again) and
    ``ValueError`` for a malformed address."""

    def __init__(
        self,
        addresses: str | Sequence[str],
        routes: dict[str, Handler],
        web_config: WebConfigWatcher | None = None,
        limits: Limits = Limits(),
        scrape_paths: Iterable[str] = (),
    ):
        # Each is parsed here unless it already is a ListenAddress (config.load parsed it).
        self.addresses = [parse_listen_address(a) for a in ([addresses] if isinstance(addresses, str) else addresses)]
        if not self.addresses:
            raise ValueError("no listen address")
        self.routes = dict(routes)
        self.web_config = web_config
        self.scrape_paths = frozenset(scrape_paths)
        self.limits = limits
        self.max_connections = self._effective_max_connections(limits.max_connections)
        self._listeners: list[socket.socket] = []
        try:
            for address in self.addresses:
                self._listeners.append(_listen(address))
        except BaseException:
            for sock in self._listeners:
                sock.close()
            raise
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._returned: collections.deque[_Conn] = collections.deque()  # handed back by request threads
        self._waiting: dict[int, _Conn] = {}  # registered in the selector, keyed by descriptor
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._open = 0  # connections open, waiting or in a request thread
        self._busy = 0  # request threads running
        self._scrapes = 0
        self._refused = 0
        self._stopping = False
        self._paused_until = 0.0
        self._backoff = 0.0
        self._thread: threading.Thread | None = None

    @staticmethod
    def _effective_max_connections(wanted: int) -> int:
        limit = _open_files_limit()
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
    def open_connections(self) -> int:
        return self._open

    @property
    def refused_connections(self) -> int:
        return self._refused

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
        with self._idle:
            while self._busy and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
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
                for key, _ in self._selector.select(timeout=0.25):
                    if self._stopping:
                        break
                    try:
                        if key.data is _LISTENER:
                            self._accept(key.fileobj)  # type: ignore[arg-type]
                        elif key.data is _WAKE:
                            self._take_returned()
                        else:
                            self._on_ready(key.data)
                    except Exception:  # a bug with one connection must not deafen the server
                        log.exception("HTTP front loop: unexpected error")
                        if isinstance(key.data, _Conn):
                            self._close(key.data)
                now = time.monotonic()
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
        for conn in list(self._waiting.values()):
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
            with self._lock:
                full = self.max_connections and self._open >= self.max_connections
                if full:
                    self._refused += 1
                else:
                    self._open += 1
            if full:
                sock.close()  # cheap: no thread, no buffer
                continue
            peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
            conn = _Conn(sock, peer, time.monotonic() + self.limits.head_timeout)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body: no 40 ms wait
                config = self.web_config.current() if self.web_config is not None else None
                ctx = config.ssl_context() if config is not None else None
                if ctx is not None:
                    conn.sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                    conn.handshaking = True
                    conn.sans = config.tls.client_allowed_sans if config.tls else None
            except OSError as e:
                log.debug("connection failed at accept", extra={"client": peer, "err": str(e)})
                self._close(conn)
                continue
            self._watch(conn, selectors.EVENT_READ)

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
        fd = conn.sock.fileno()
        if self._waiting.pop(fd, None) is not None:
            self._selector.unregister(conn.sock)

    def _close(self, conn: _Conn) -> None:
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
            self._watch(conn, selectors.EVENT_READ)
            if conn.buf:  # a pipelined request came with the previous one
                self._check_head(conn)

    def _sweep(self, now: float) -> None:
        for conn in [c for c in self._waiting.values() if c.deadline <= now]:
            log.debug("request head deadline passed; closing", extra={"client": conn.peer, "bytes": len(conn.buf)})
            self._close(conn)

    def _on_ready(self, conn: _Conn) -> None:
        if conn.handshaking:
            try:
                conn.sock.do_handshake()  # type: ignore[attr-defined]
                if conn.sans is not None:
                    check_client_sans(conn.sock, conn.sans)  # type: ignore[arg-type]
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
        limit = self.limits.max_header_bytes
        while len(conn.buf) <= limit:
            try:
                data = conn.sock.recv(16384)
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
                self._close(conn)
                return
            conn.buf += data
        self._watch(conn, selectors.EVENT_READ)
        self._check_head(conn)

    def _check_head(self, conn: _Conn) -> None:
        if not conn.started and conn.buf:
            del conn.buf[: len(conn.buf) - len(conn.buf.lstrip(b"\r\n"))]  # RFC 9112 §2.2: skip empty lines
            if conn.buf:
                conn.started = True
                conn.deadline = min(conn.deadline, time.monotonic() + self.limits.head_timeout)
        limit = self.limits.max_header_bytes
        end = _HEAD_END.search(conn.buf, 0, limit + 4)
        if end is None:
            if len(conn.buf) > limit:
                self._reject(conn, 431, "431 Request Header Fields Too Large")
            return
        head, rest = bytes(conn.buf[: end.start()]), bytes(conn.buf[end.end():])
        self._unwatch(conn)
        conn.buf = bytearray()
        conn.started = False
        with self._lock:
            self._busy += 1
        try:
            threading.Thread(target=self._serve, args=(conn, head, rest), name="http-request", daemon=True).start()
        except RuntimeError as e:  # can't start a new thread
            with self._lock:
                self._busy -= 1
            log.warning("cannot start a request thread", extra={"err": str(e)})
            self._reject(conn, 503, "503 Service Unavailable")

    def _reject(self, conn: _Conn, status: int, text: str) -> None:
        log.debug("request refused", extra={"client": conn.peer, "status": status})
        try:
            conn.sock.send(_plain_response(status, text))  # best effort: the socket is non-blocking
        except (OSError, ValueError):
            pass
        self._close(conn)

    # --- request threads ------------------------------------------------------------------------

    def _serve(self, conn: _Conn, head: bytes, rest: bytes) -> None:
        buf = bytearray(rest)
        keep = False
        try:
            for served in range(1, self.limits.requests_per_thread + 1):
                keep = self._serve_one(conn, head)
                if not keep or self._stopping:
                    keep = False
                    break
                if served == self.limits.requests_per_thread:
                    break
                # A client that sends its next request at once (a benchmark, a pipeline) is served on this
                # thread; anything slower goes back to the front thread, which owns the waiting.
                next_head = self._next_head(conn, buf)
                if next_head is None:
                    break
                head = next_head
        except OSError:
            keep = False  # the client went away while we looked for its next request
        finally:
            if keep:
                try:
                    conn.sock.setblocking(False)
                except OSError:
                    keep = False
            with self._lock:  # decided under the lock: after shutdown starts, nothing goes back to the front
                self._busy -= 1
                self._idle.notify_all()
                keep = keep and not self._stopping
                if keep:
                    conn.buf = buf
                    conn.started = False
                    conn.deadline = time.monotonic() + self.limits.idle_timeout
                    self._returned.append(conn)
            if keep:
                self._wake()
            else:
                self._close_from_thread(conn)

    def _next_head(self, conn: _Conn, buf: bytearray) -> bytes | None:
        """The next complete request head, if it is in ``buf`` or arrives within a moment; the bytes after
        it stay in ``buf``. None leaves what was read in ``buf``. Raises OSError when the client is gone."""
        del buf[: len(buf) - len(buf.lstrip(b"\r\n"))]
        limit = self.limits.max_header_bytes
        end = _HEAD_END.search(buf, 0, limit + 4)
        if end is None and len(buf) <= limit:
            conn.sock.settimeout(NEXT_REQUEST_WAIT)
            try:
                data = conn.sock.recv(16384)
            except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
                return None
            if not data:
                raise ConnectionResetError("closed by the client")
            buf += data
            del buf[: len(buf) - len(buf.lstrip(b"\r\n"))]
            end = _HEAD_END.search(buf, 0, limit + 4)
        if end is None:
            return None
        head = bytes(buf[: end.start()])
        del buf[: end.end()]
        return head

    def _serve_one(self, conn: _Conn, head: bytes) -> bool:
        """Answer one request; whether the connection stays open."""
        keep = False
        path = "?"
        try:
            try:
                request, version, has_body = _parse_head(head)
                path = request.path
            except _BadRequest as e:
                data = _plain_response(e.status, f"{e.status} {e}")
            else:
                keep = _keep_alive(version, request.headers) and not has_body  # a body is never read
                if request.method not in ("GET", "HEAD"):
                    keep = False
                    response = Response(405, b"405 method not allowed\n", headers={"Allow": "GET, HEAD"})
                else:
                    response = self._respond(request)
                data = self._encode(request, response, keep, version)
            conn.sock.setblocking(True)
            conn.sock.settimeout(self.limits.write_timeout)
            conn.sock.sendall(data)
        except OSError as e:  # the client went away or stopped reading: nothing to answer, nobody to tell
            log.debug("client disconnected before the response was sent",
                      extra={"client": conn.peer, "path": path, "err": str(e) or type(e).__name__})  # fmt: skip
            return False
        except Exception:
            log.exception("error serving a request", extra={"client": conn.peer, "path": path})
            return False
        return keep

    def _close_from_thread(self, conn: _Conn) -> None:
        try:
            conn.sock.close()
        except OSError:
            pass
        with self._lock:
            self._open -= 1

    def _respond(self, request: Request) -> Response:
        config = self.web_config.current() if self.web_config is not None else None  # one snapshot
        if config is not None and request.path != "/healthz" and not config.authorized(request.headers.get("authorization")):
            return Response(401, b"401 Unauthorized\n", headers=dict(UNAUTHORIZED_HEADERS))
        handler = self.routes.get(request.path)
        if handler is None:
            return Response(404, b"404 page not found\n")
        limited = request.path in self.scrape_paths and self.limits.max_requests > 0
        if limited:
            with self._lock:
                if self._scrapes >= self.limits.max_requests:
                    full = True
                else:
                    full = False
                    self._scrapes += 1
            if full:  # promhttp's words, as node_exporter answers
                text = f"Limit of concurrent requests reached ({self.limits.max_requests}), try again later.\n"
                return Response(503, text.encode())
        try:
            return handler(request)
        except Exception:
            log.exception("error serving a request", extra={"path": request.path})
            return Response(500, b"500 internal server error\n")
        finally:
            if limited:
                with self._lock:
                    self._scrapes -= 1

    def _encode(self, request: Request, response: Response, keep: bool, version: str) -> bytes:
        config = self.web_config.current() if self.web_config is not None else None
        body = response.body
        headers = {**(config.headers if config is not None else {}), **response.headers}
        if len(body) > 512 and accepts_gzip(request.header("accept-encoding")):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        lines = [
            ("Server", SERVER_HEADER),
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(body))),
            *headers.items(),
        ]
        if not keep:
            lines.append(("Connection", "close"))
        elif version == "HTTP/1.0":
            lines.append(("Connection", "keep-alive"))
        return _serialize(response.status, lines, b"" if request.method == "HEAD" else body)


def landing_page(title: str, links: dict[str, str]) -> Handler:
    items = "".join(f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>' for href, text in links.items())
    body = (
        f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><ul>{items}</ul></body></html>\n"
    ).encode()

    def handle(request: Request) -> Response:
        return Response(200, body, "text/html; charset=utf-8")

    return handle


def healthz(request: Request) -> Response:
    return Response(200, b"OK\n")
