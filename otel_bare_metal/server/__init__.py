"""The HTTP server: a transport on h11 (:mod:`.http`) and the ``--web.config.file`` it is wired to
(:mod:`.webconfig`), which the transport never imports."""

from otel_bare_metal.server.http import (
    ConcurrencyLimit,
    HTTPServer,
    Limits,
    Listener,
    Request,
    Response,
    accepts_gzip,
    healthz,
    landing_page,
    parse_listen_address,
    raise_open_files_limit,
)

__all__ = [
    "ConcurrencyLimit",
    "HTTPServer",
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
