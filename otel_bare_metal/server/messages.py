"""What routes see and answer: :class:`Request` and :class:`Response`, plus the small pieces of HTTP
semantics the server applies to them (request-target, gzip negotiation)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", " (RFC 9110 §5.3)
    peer: str = ""  # "address:port" of the client
    received: float = 0.0  # time.monotonic() when the request head was complete

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


class BadTarget(ValueError):
    """A request-target RFC 9112 §3.2 does not allow for the method."""


def split_target(method: str, target: str) -> tuple[str, dict[str, list[str]]]:
    """(path, query) of a request-target in origin form (``/p?q``) or absolute form
    (``http://host/p?q``); ``*`` is allowed for OPTIONS only. Raises :class:`BadTarget`."""
    if target == "*":
        if method != "OPTIONS":
            raise BadTarget("'*' is a target for OPTIONS only")
        return "*", {}
    if not target.startswith("/"):
        try:
            url = urlsplit(target)
            url.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError as e:  # e.g. "http://[::1/": an unclosed IPv6 literal
            raise BadTarget(f"malformed absolute-form target: {e}") from None
        if url.scheme.lower() not in ("http", "https") or not url.netloc:
            raise BadTarget("the target is neither a path nor an http(s) URL")
        path, query = url.path or "/", url.query
    else:
        path, _, query = target.partition("?")
        path = path.partition("#")[0]
    return path, parse_qs(query) if query else {}


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110 §12.5.3: ``q=0`` means "not acceptable";
    ``*`` covers gzip unless gzip is listed on its own)."""
    if not accept_encoding:
        return False
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
