"""A small threaded HTTP server: routes map a path to a function of the request.

``/metrics`` content negotiation is done by the page (text or OpenMetrics); this module adds
gzip when the client accepts it, a landing page and ``/healthz``.
"""

from __future__ import annotations

import gzip
import html
import logging
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from otel_bare_metal.address import parse_host_port
from otel_bare_metal.exposition.webconfig import UNAUTHORIZED_HEADERS, WebConfigServerMixin, WebConfigWatcher

log = logging.getLogger(__name__)


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


def parse_listen_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port`` → (host, port)."""
    try:
        return parse_host_port(address, None, allow_empty_host=True, allow_port_zero=True)
    except ValueError as e:
        raise ValueError(f"invalid listen address {address!r}: want HOST:PORT, :PORT or [IPv6]:PORT ({e})") from None


class _Server(WebConfigServerMixin, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            try:  # serve IPv4 and IPv6 on "::"
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        super().server_bind()


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


class HTTPServer:
    """Serves ``routes`` on ``address`` from a background thread until ``shutdown``."""

    def __init__(self, address: str, routes: dict[str, Handler], web_config: WebConfigWatcher | None = None):
        host, port = parse_listen_address(address)
        family, bind_host = _family(host)
        routes = dict(routes)
        server_cls = type("Server", (_Server,), {"address_family": family})
        handler_cls = type("Handler", (_RequestHandler,), {"routes": routes})
        self._server = server_cls((bind_host, port), handler_cls)  # raises OSError when the port is taken
        self._server.web_config = web_config  # TLS per connection; auth and headers per request
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "HTTPServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _RequestHandler(BaseHTTPRequestHandler):
    routes: dict[str, Handler] = {}
    protocol_version = "HTTP/1.1"
    server_version = "otel-bare-metal"
    # Headers and body are two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (~40 ms per keep-alive scrape).
    disable_nagle_algorithm = True
    # A client that connects and then sends nothing (or one byte at a time) is dropped after
    # this many idle seconds instead of holding its thread forever.
    timeout = 30

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(head=True)

    def _dispatch(self, head: bool = False) -> None:
        url = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query),
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        watcher = getattr(self.server, "web_config", None)
        config = watcher.current() if watcher is not None else None  # one snapshot per request
        if config is not None and url.path != "/healthz" and not config.authorized(self.headers.get("Authorization")):
            response = Response(401, b"401 Unauthorized\n", headers=dict(UNAUTHORIZED_HEADERS))
        else:
            handler = self.routes.get(url.path)
            try:
                response = handler(request) if handler else Response(404, b"404 page not found\n")
            except Exception:
                log.exception("error serving %s", url.path)
                response = Response(500, b"500 internal server error\n")
        body = response.body
        headers = {**(config.headers if config is not None else {}), **response.headers}
        if len(body) > 512 and "gzip" in request.header("accept-encoding"):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s - %s", self.address_string(), format % args)


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
