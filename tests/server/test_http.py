"""The HTTP server under slow, big, many and impolite clients: deadlines, size and count limits, shutdown.

Every loop here is bounded and talks to loopback only. Connection counts stay modest: the limits are
set small in each test and then exceeded."""

from __future__ import annotations

import gzip
import http.client
import logging
import socket
import struct
import threading
import time
from contextlib import ExitStack, contextmanager

import pytest

from otel_bare_metal.server import http as http_module
from otel_bare_metal.server.http import HTTPServer, Limits, Response, accepts_gzip


@contextmanager
def serving(routes=None, limits=Limits(), scrape_paths=("/metrics",), addresses="127.0.0.1:0", **hooks):
    routes = routes if routes is not None else {"/metrics": lambda r: Response(200, b"m 1\n"), "/healthz": lambda r: Response(200, b"OK\n")}
    server = HTTPServer(addresses, routes, limits=limits, scrape_paths=scrape_paths, **hooks).start()
    try:
        yield server
    finally:
        server.shutdown(grace=2)


def get(port: int, path: str = "/metrics", headers: dict | None = None, timeout: float = 5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (reading and discarding any reply)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionError:
        return True
    except socket.timeout:
        return False


def wait_for(condition, within: float = 5.0) -> bool:
    """Whether ``condition()`` holds within ``within`` seconds (polled every 10 ms): how a test waits for
    the server to reach a state, instead of sleeping and hoping it has."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


class HeldRoute:
    """A route that keeps every request inside it until released, so a test can fill a budget:
    ``with route.holding(port, path, n) as results`` sends ``n`` requests, waits until all of them
    are inside, and when the block ends releases them and collects their responses in ``results``."""

    def __init__(self, body: bytes):
        self.body = body
        self._entered = threading.Semaphore(0)
        self._release = threading.Event()

    def __call__(self, request):
        self._entered.release()
        self._release.wait(10)
        return Response(200, self.body)

    @contextmanager
    def holding(self, port: int, path: str, n: int):
        results: list = []
        workers = [threading.Thread(target=lambda: results.append(get(port, path, timeout=15))) for _ in range(n)]
        for w in workers:
            w.start()
        try:
            for _ in range(n):
                assert self._entered.acquire(timeout=10), "a request never reached the route"
            yield results
        finally:
            self._release.set()
            for w in workers:
                w.join(15)


# --- one deadline for the whole request head ------------------------------------------------------


def test_a_trickled_request_head_is_cut_off_at_its_deadline_not_per_read():
    """The old server timed out each read: one byte every 0.2 s kept a connection (and its thread) for ever."""
    with serving(limits=Limits(head_timeout=1.0)) as server, socket.create_connection(("127.0.0.1", server.port)) as slow:
        start = time.monotonic()
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
        closed = False
        for i in range(40):  # 8 s of trickling at most
            try:
                slow.sendall(b"X-%d: y\r\n" % i)
            except OSError:
                closed = True
                break
            assert get(server.port)[0] == 200, "others are served meanwhile"
            slow.settimeout(0.2)
            try:
                if slow.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except ConnectionError:
                closed = True
                break
        assert closed, "the server closed the trickling connection"
        assert time.monotonic() - start < 5, "at the head deadline (1 s), not after the trickle ran out"


def test_an_idle_keep_alive_connection_is_dropped_and_holds_up_no_one():
    with serving(limits=Limits(idle_timeout=0.5)) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            idle.settimeout(5)
            assert b"200 OK" in idle.recv(4096)
            assert get(server.port)[0] == 200
            start = time.monotonic()
            assert closed_by_server(idle, 5)
            assert time.monotonic() - start < 3


def test_keep_alive_and_pipelined_requests_are_served_in_order():
    with serving() as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.index(b"OK\n") < data.index(b"m 1\n")


def test_back_to_back_requests_on_one_connection_all_get_answers():
    """A thread serves the next request itself when it comes at once, up to requests_per_thread, then
    hands the connection back: no request may be lost at either hand-over."""
    with serving(limits=Limits(requests_per_thread=3)) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        for i in range(20):
            conn.request("GET", "/metrics" if i % 2 else "/healthz")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == (b"m 1\n" if i % 2 else b"OK\n")
            if i % 7 == 6:
                time.sleep(0.05)  # slower than the thread waits: back to the front thread
        conn.close()


# --- bounded request heads ------------------------------------------------------------------------


def test_big_headers_get_431_and_the_connection_is_closed():
    """http.server took 100 header lines of 64 KB each (6.4 MB per connection) before refusing."""
    limits = Limits(max_header_bytes=16 * 1024)
    with serving(limits=limits) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        sent = 0
        try:
            for i in range(99):  # 99 lines of 8 KB: well past the limit, far below http.server's
                s.sendall(b"X-%d: " % i + b"a" * 8192 + b"\r\n")
                sent += 8192
        except OSError:
            pass  # the server closed while we were still sending: also a refusal
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except ConnectionError:
            pass
        assert reply == b"" or reply.startswith(b"HTTP/1.1 431 "), reply[:100]
        assert sent < 99 * 8192 or reply.startswith(b"HTTP/1.1 431 ")
        assert get(server.port)[0] == 200


def test_a_head_within_the_limit_is_served():
    with serving(limits=Limits(max_header_bytes=16 * 1024)) as server:
        status, _, body = get(server.port, headers={"X-Big": "a" * 12000})
    assert status == 200 and body == b"m 1\n"


@pytest.mark.parametrize(
    "head",
    [b"GARBAGE\r\n\r\n", b"GET /metrics HTTP/9.9\r\n\r\n", b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
     b"GET /metrics HTTP/1.1\r\nX: a\r\n folded\r\n\r\n"],
)
def test_malformed_heads_get_a_4xx_or_505_and_a_close(head):
    with serving() as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(head)
        reply = s.recv(4096)
        assert reply.split(b" ")[1] in (b"400", b"505")
        assert closed_by_server(s, 5)


def test_post_is_405_and_closes_without_reading_the_body():
    with serving() as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in reply
        assert closed_by_server(s, 5)


# --- bounded connections and scrapes --------------------------------------------------------------


def test_connections_past_the_limit_are_closed_at_once_without_a_thread_each():
    with serving(limits=Limits(max_connections=6)) as server, ExitStack() as stack:
        threads_before = threading.active_count()
        held = [stack.enter_context(socket.create_connection(("127.0.0.1", server.port))) for _ in range(6)]
        assert wait_for(lambda: server.idle_connections == 6), "all six accepted and set up"
        for s in held:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never finish
        # Nothing else connects meanwhile: idle ones become busy only once their first bytes are read,
        # so none of them can be evicted below and every newcomer must be refused.
        assert wait_for(lambda: server.idle_connections == 0), "their first bytes have been read"
        assert threading.active_count() == threads_before, "a connection waiting for its head has no thread"
        extra = [stack.enter_context(socket.create_connection(("127.0.0.1", server.port))) for _ in range(20)]
        for s in extra:
            assert closed_by_server(s, 5), "past --web.max-connections a connection is closed at once"
        assert server.refused_connections >= 20
        assert threading.active_count() == threads_before
        for s in held:
            s.close()
        deadline = time.monotonic() + 5
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get(server.port)[0] == 200, "slots come back when connections close"


def test_a_client_that_reads_a_trickle_is_dropped_at_the_write_deadline():
    """A client reading a little now and then cannot hold a request thread past the write deadline."""
    big = b"z" * (32 << 20)  # far more than the socket buffers hold
    with serving({"/metrics": lambda r: Response(200, big)}, limits=Limits(write_timeout=1.0)) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            s.settimeout(1)
            start = time.monotonic()
            while server._busy and time.monotonic() - start < 8:  # 4 KB every 0.1 s
                try:
                    if not s.recv(4096):
                        break
                except (socket.timeout, ConnectionError):
                    break
                time.sleep(0.1)
            assert server._busy == 0, "the request thread gave up"
            assert time.monotonic() - start < 6
        assert get(server.port)[0] == 200


def test_scrapes_past_max_requests_get_503_and_healthz_still_answers():
    slow = HeldRoute(b"slow 1\n")
    routes = {"/metrics": slow, "/healthz": lambda r: Response(200, b"OK\n")}
    with serving(routes, limits=Limits(max_requests=2)) as server:
        with slow.holding(server.port, "/metrics", 2) as results:
            status, _, body = get(server.port)
            assert status == 503 and body == b"Limit of concurrent requests reached (2), try again later.\n"
            assert get(server.port, "/healthz")[0] == 200
        assert [r[0] for r in results] == [200, 200]
        assert get(server.port)[0] == 200


def test_many_slow_clients_do_not_lock_out_a_well_behaved_one():
    """A small slowloris: 150 connections trickling header bytes, each costing no thread."""
    with serving(limits=Limits(max_connections=400, head_timeout=30)) as server, ExitStack() as stack:
        slow = [stack.enter_context(socket.create_connection(("127.0.0.1", server.port))) for _ in range(150)]
        for round_ in range(3):
            for s in slow:
                s.sendall(b"GET / HTTP/1.1\r\n" if round_ == 0 else b"X: y\r\n")
            status, _, _ = get(server.port, timeout=5)
            assert status == 200
        assert server.open_connections >= 150


# --- several listen addresses ---------------------------------------------------------------------


def test_every_listen_address_is_served_and_a_taken_one_fails_cleanly():
    with serving(addresses=["127.0.0.1:0", "127.0.0.2:0"]) as server:
        p1, p2 = server.ports
        assert get(p1)[0] == 200
        conn = http.client.HTTPConnection("127.0.0.2", p2, timeout=5)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 200
        conn.close()
        with pytest.raises(OSError, match=f"127.0.0.2:{p2}"):
            HTTPServer(["127.0.0.1:0", f"127.0.0.2:{p2}"], {})


# --- the small ones -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header,expected",
    [("gzip", True), ("gzip;q=0", False), ("gzip; q=0.0", False), ("gzip;q=0.5", True), ("*", True), ("*;q=0", False),
     ("gzip;q=0, *", False), ("identity", False), ("", False), ("deflate, gzip;q=1.0", True), ("GZIP", True),
     ("x-gzip", True), ("gzip;q=bogus", False), ("br;q=1, *;q=0.1", True)],
)
def test_accept_encoding(header, expected):
    assert accepts_gzip(header) is expected


def test_gzip_q0_is_honoured_and_server_has_no_version():
    body = b"x" * 2000
    with serving({"/metrics": lambda r: Response(200, body)}) as server:
        status, headers, got = get(server.port, headers={"Accept-Encoding": "gzip;q=0"})
        assert status == 200 and "content-encoding" not in headers and got == body
        status, headers, got = get(server.port, headers={"Accept-Encoding": "gzip"})
        assert headers["content-encoding"] == "gzip" and gzip.decompress(got) == body
    assert headers["server"] == "otel-bare-metal"


def test_a_client_that_leaves_early_is_a_debug_line_not_a_traceback(caplog, capfd):
    sent = threading.Event()
    gone = threading.Event()

    def big(request):
        sent.set()
        gone.wait(10)
        return Response(200, b"y" * (8 << 20))

    with caplog.at_level(logging.DEBUG, logger=http_module.__name__):
        with serving({"/metrics": big}) as server:
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sent.wait(10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            s.close()
            gone.set()
            deadline = time.monotonic() + 10
            while not any("disconnected" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert get(server.port, "/healthz")[0] == 404  # still serving (no /healthz route here)
    records = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert records and all(r.levelno == logging.DEBUG for r in records)
    assert records[0].client.startswith("127.0.0.1:") and records[0].path == "/metrics"
    assert "Traceback" not in capfd.readouterr().err


def test_shutdown_lets_a_request_in_flight_finish():
    entered = threading.Event()

    def slow(request):
        entered.set()
        time.sleep(1.0)
        return Response(200, b"finished\n")

    server = HTTPServer("127.0.0.1:0", {"/metrics": slow}, limits=Limits()).start()
    result = []
    t = threading.Thread(target=lambda: result.append(get(server.port, timeout=10)))
    t.start()
    assert entered.wait(10)
    start = time.monotonic()
    server.shutdown(grace=5)
    assert time.monotonic() - start < 4
    t.join(10)
    assert result and result[0][0] == 200 and result[0][2] == b"finished\n"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


def test_shutdown_gives_up_on_a_stuck_request_after_the_grace():
    stuck = threading.Event()
    entered = threading.Event()

    def hang(request):
        entered.set()
        stuck.wait(30)
        return Response(200, b"late\n")

    server = HTTPServer("127.0.0.1:0", {"/metrics": hang}).start()
    t = threading.Thread(target=lambda: get(server.port, timeout=10), daemon=True)
    t.start()
    assert entered.wait(10)
    start = time.monotonic()
    server.shutdown(grace=0.5)
    assert time.monotonic() - start < 3
    stuck.set()


def test_max_connections_fits_under_the_open_files_limit(monkeypatch, caplog):
    monkeypatch.setattr(http_module, "open_files_limit", lambda: 200)
    with caplog.at_level(logging.INFO, logger=http_module.__name__):
        explicit = HTTPServer("127.0.0.1:0", {}, limits=Limits(max_connections=5000))
        default = HTTPServer("127.0.0.1:0", {})
        unlimited = HTTPServer("127.0.0.1:0", {}, limits=Limits(max_connections=0))
        small = HTTPServer("127.0.0.1:0", {}, limits=Limits(max_connections=10))
    assert (explicit.max_connections, default.max_connections, unlimited.max_connections, small.max_connections) == (136, 136, 136, 10)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    for server in (explicit, default, unlimited, small):
        server.shutdown(grace=0)
