"""What RFC 9112 says to refuse, half-closed clients, connection slots that idle clients cannot hog, slots
given back on every failure at accept, and per-route budgets.

Loopback only; every loop is bounded in count and time."""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import ExitStack

import pytest

from otel_bare_metal.exposition.prometheus import PrometheusPage
from otel_bare_metal.server import http as http_module
from otel_bare_metal.server.http import ConcurrencyLimit, HTTPServer, Limits, Response

from test_http import HeldRoute, closed_by_server, get, serving, wait_for


def exchange(port: int, raw: bytes, half_close: bool = False) -> bytes:
    """Send ``raw`` on a new connection and read until the server closes it (at most 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        if half_close and hasattr(socket, "TCP_CORK"):  # Linux: the request and the FIN leave in one segment
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.sendall(raw)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except (socket.timeout, ConnectionError):
            pass
        return reply


# --- RFC 9112 refusals (issue 21 rows 8 and 12) ----------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /met\trics HTTP/1.1\r\nHost: t\r\n\r\n",  # TAB inside the request-target
        b"GET /met\rrics HTTP/1.1\r\nHost: t\r\n\r\n",  # CR inside the request-target
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0, 5\r\n\r\nhello",
        b"GET /metrics HTTP/1.1\r\n\r\n",  # no Host
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # two Hosts
        b"GET http://[::1/ HTTP/1.1\r\nHost: t\r\n\r\n",  # unclosed IPv6 literal: used to get no answer at all
        b"GET http://t:99999/metrics HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET metrics HTTP/1.1\r\nHost: t\r\n\r\n",  # neither a path nor a URL
    ],
    ids=["tab-in-target", "cr-in-target", "cl-not-a-number", "cl-negative", "cl-conflicting", "cl-list",
         "no-host", "two-hosts", "unclosed-ipv6-url", "bad-port-url", "relative-target"],  # fmt: skip
)
def test_what_rfc_9112_says_to_refuse_gets_400_and_a_close(raw):
    seen = []
    routes = {"/metrics": lambda r: seen.append(r) or Response(200, b"m 1\n")}
    with serving(routes) as server:
        reply = exchange(server.port, raw)
        assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
        assert b"connection: close" in reply.lower()
        assert not seen, "the route never saw the request"
        assert get(server.port)[0] == 200


def test_absolute_form_targets_are_served_by_their_path():
    with serving() as server:
        reply = exchange(server.port, b"GET http://t:9/metrics?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"m 1\n")


def test_an_unparsable_accept_header_gets_the_text_format_not_an_error():
    page = PrometheusPage()
    body, content_type = page.render("application/openmetrics-text; version=abc")
    assert content_type.startswith("text/plain; version=0.0.4")
    assert body == page.render("")[0]


def test_errors_a_client_can_cause_before_auth_are_rate_limited(caplog):
    def broken(request):
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger=http_module.__name__):
        with serving(authorize=broken) as server:
            for _ in range(20):
                assert get(server.port)[0] == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]


# --- half-close (row 5) --------------------------------------------------------------------------


def test_a_request_then_a_half_close_is_answered_with_connection_close():
    with serving() as server:
        for _ in range(5):
            reply = exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", half_close=True)
            assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"m 1\n")
            assert b"connection: close" in reply.lower()
        # A head cut short by the half-close is not served: a 400 at most, and a close.
        reply = exchange(server.port, b"GET /metrics HTTP/1.1\r\nHo", half_close=True)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 400 ")
        assert get(server.port)[0] == 200


def test_pipelined_requests_then_a_half_close_are_all_answered():
    with serving() as server:
        reply = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /metrics HTTP/1.1\r\nHost: t\r\n\r\n",
                         half_close=True)  # fmt: skip
    assert reply.count(b"HTTP/1.1 200 OK") == 2 and reply.endswith(b"m 1\n")


# --- connection slots (row 7) --------------------------------------------------------------------


def test_silent_connections_make_room_for_a_scraper_oldest_first():
    """One client holding every slot without sending a byte used to lock everyone else out."""
    with serving(limits=Limits(max_connections=5)) as server, ExitStack() as stack:
        silent = [stack.enter_context(socket.create_connection(("127.0.0.1", server.port))) for _ in range(5)]
        assert wait_for(lambda: server.idle_connections == 5), "all five accepted and set up"
        for _ in range(3):  # scrapers that keep their connection open
            s = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
        assert server.evicted_connections == 3 and server.refused_connections == 0
        assert all(closed_by_server(s, 5) for s in silent[:3]), "the three oldest were closed"
        assert not closed_by_server(silent[4], 0.2), "the newest silent one is still open"


def test_idle_keep_alive_connections_make_room_too():
    with serving(limits=Limits(max_connections=3)) as server, ExitStack() as stack:
        kept = []
        for n in range(1, 4):
            s = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b"200 OK" in s.recv(4096)
            kept.append(s)
            # Its request thread hands it back (after waiting 2 ms for a next request) and the front
            # thread files it as idle; one at a time, so kept[0] is the one idle longest.
            assert wait_for(lambda: server.idle_connections == n), f"connection {n} back with the front thread"
        assert server.open_connections == 3 and server.refused_connections == 0
        assert get(server.port)[0] == 200
        assert server.evicted_connections == 1 and server.refused_connections == 0
        assert closed_by_server(kept[0], 5)
        assert not closed_by_server(kept[2], 0.2), "the newest idle one is still open"


def test_connections_sending_heads_are_not_evicted_and_the_newcomer_is_refused():
    with serving(limits=Limits(max_connections=3)) as server, ExitStack() as stack:
        busy = [stack.enter_context(socket.create_connection(("127.0.0.1", server.port))) for _ in range(3)]
        assert wait_for(lambda: server.idle_connections == 3), "all three accepted and set up"
        for s in busy:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")
        # Nothing else connects meanwhile: idle ones become busy only once their first bytes are read.
        assert wait_for(lambda: server.idle_connections == 0), "their first bytes have been read"
        assert server.open_connections == 3
        newcomer = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
        assert closed_by_server(newcomer, 5)
        assert server.evicted_connections == 0 and server.refused_connections >= 1
        for s in busy:
            s.sendall(b"Host: t\r\n\r\n")
            s.settimeout(5)
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")


# --- every failure at accept gives the slot back (row 3b) ------------------------------------------


@pytest.mark.parametrize("error", [ValueError("embedded null byte"), RuntimeError("bug"), OSError(24, "EMFILE")])
def test_a_failure_while_accepting_closes_the_connection_and_frees_its_slot(error):
    failing = [True]

    def ssl_context():
        if failing[0]:
            raise error
        return None

    with serving(limits=Limits(max_connections=3), ssl_context=ssl_context) as server:
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                assert closed_by_server(s, 5)
        deadline = time.monotonic() + 5
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open_connections == 0
        failing[0] = False
        assert get(server.port)[0] == 200


def test_a_failure_registering_a_connection_frees_its_slot(monkeypatch):
    with serving(limits=Limits(max_connections=2)) as server:
        real = server._watch
        calls = [0]

        def flaky(conn, events):
            calls[0] += 1
            if calls[0] <= 4:
                raise ValueError("injected")
            return real(conn, events)

        monkeypatch.setattr(server, "_watch", flaky)
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                assert closed_by_server(s, 5)
        assert get(server.port)[0] == 200
        deadline = time.monotonic() + 5
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open_connections == 0


# --- per-route budgets (issue 21 item 1's hook) ----------------------------------------------------


def test_a_route_with_its_own_budget_cannot_use_up_the_shared_one():
    slow = HeldRoute(b"probe 1\n")
    routes = {"/metrics": lambda r: Response(200, b"m 1\n"), "/probe": slow}
    with serving(routes, limits=Limits(max_requests=2), scrape_paths=("/metrics", "/probe"),
                 route_limits={"/probe": 2}) as server:  # fmt: skip
        with slow.holding(server.port, "/probe", 2) as results:
            status, _, body = get(server.port, "/probe")
            assert status == 503 and body == b"Limit of concurrent requests reached (2), try again later.\n"
            assert get(server.port, "/metrics")[0] == 200, "/metrics keeps its own room"
        assert sorted(r[0] for r in results) == [200, 200]


def test_limit_key_lets_a_query_count_against_another_route_s_budget():
    release = threading.Event()
    entered = threading.Semaphore(0)

    def metrics(request):
        if "target" in request.query:  # served like /probe
            entered.release()
            release.wait(10)
        return Response(200, b"m 1\n")

    key = lambda r: "/probe" if "target" in r.query else r.path  # noqa: E731
    probes = ConcurrencyLimit(1, "probes")  # a budget that names what it counts in its refusal
    with serving({"/metrics": metrics}, scrape_paths=("/metrics",), route_limits={"/probe": probes}, limit_key=key) as server:
        result = []
        t = threading.Thread(target=lambda: result.append(get(server.port, "/metrics?target=a", timeout=15)))
        t.start()
        assert entered.acquire(timeout=10)
        status, _, body = get(server.port, "/metrics?target=b")
        assert status == 503, "the probe budget (1) is taken"
        assert body == b"Limit of concurrent probes reached (1), try again later.\n"
        assert get(server.port, "/metrics")[0] == 200, "/metrics itself is not"
        release.set()
        t.join(15)
        assert result and result[0][0] == 200


# --- listening sockets handed over (systemd socket activation) --------------------------------------


def test_an_already_bound_listening_socket_is_served_and_closed_at_shutdown():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = HTTPServer([sock], {"/metrics": lambda r: Response(200, b"m 1\n")}).start()
    try:
        assert server.addresses == [f"127.0.0.1:{port}"]
        assert get(port)[0] == 200
    finally:
        server.shutdown(grace=1)
    assert sock.fileno() == -1


def test_a_socket_that_is_not_listening_is_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="not listening"):
            HTTPServer([sock], {})


# --- heads trickled a byte per segment (row 10: the CPU figure is bench/head_trickle.py's) ----------


def test_a_head_sent_one_byte_per_segment_is_read_whole_and_answered():
    raw = b"GET /metrics HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 40) for i in range(40)) + b"\r\n"
    with serving() as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(raw)):
            s.send(raw[i:i + 1])
            if i % 200 == 0:
                time.sleep(0.01)  # let the server read mid-head, so it rests between reads
        reply = s.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"m 1\n")
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")  # the next head, in one segment, on the same connection
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")


# --- responses the transport writes ------------------------------------------------------------------


def test_head_gets_get_s_headers_without_a_body_and_the_connection_stays_usable():
    with serving() as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\nGET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nContent-Length: 4\r\n" in head
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\nm 1\n"), "no body after the HEAD answer"


def test_a_header_value_that_would_split_the_response_is_never_sent():
    routes = {"/metrics": lambda r: Response(200, b"m 1\n", headers={"X-Bad": "a\r\nSet-Cookie: x=1"})}
    with serving(routes) as server:
        reply = exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
    assert b"Set-Cookie" not in reply
