"""Wires sources, telemetry and exposition into one running exporter.

Everything is built from a ``Config`` value: no global state.  Tests build an ``App`` on
fixture trees and an ephemeral port; the command line builds one from flags.
"""

from __future__ import annotations

import functools
import logging
import platform
import threading
from typing import Sequence

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource

from otel_bare_metal import __version__
from otel_bare_metal._otel_compat import export_timeout_millis
from otel_bare_metal.config import Config
from otel_bare_metal.server.http import ConcurrencyLimit, HTTPServer, Limits, Listener, Request, Response, healthz, landing_page
from otel_bare_metal.exposition.otlp import push_exporters
from otel_bare_metal.deadline import SCRAPE_TIMEOUT_HEADER, scrape_deadline
from otel_bare_metal.exposition.prometheus import PageUnavailable, PrometheusPage
from otel_bare_metal.registry import Registry, Route, RouteContext, registry as default_registry
from otel_bare_metal.telemetry import SourceWorker, instrument
from otel_bare_metal.telemetry.provider import meter_provider
from otel_bare_metal.logutil import fields as log_fields
from otel_bare_metal.telemetry.resource import build_resource

log = logging.getLogger(__name__)

SCOPE = "otel_bare_metal"


def build_collectors(config: Config, reg: Registry | None = None) -> list[SourceWorker]:
    """One SourceWorker per enabled collector that has something to collect, in registry order.
    A plugin whose source factory raises is logged and left out; the others still run."""
    reg = reg or default_registry()
    collectors = []
    paths = config.paths()
    for spec in reg.specs:
        if not config.enabled(spec):
            continue
        try:
            source = spec.source(paths, config.options_for(spec))
        except Exception:
            if not spec.plugin:
                raise
            log.exception("collector plugin skipped: its source factory failed",
                          extra=log_fields(plugin=spec.name, distribution=spec.plugin))
            continue
        if source is not None:
            collectors.append(SourceWorker(spec.name, source))
    return collectors


class App:
    """One MeterProvider, its instruments, the Prometheus page and the HTTP server."""

    def __init__(
        self,
        config: Config,
        resource: Resource | None = None,
        collectors: list[SourceWorker] | None = None,
        registry: Registry | None = None,
    ):
        self.config = config
        self.registry = reg = registry or default_registry()
        if config.sdk_disabled:  # nothing is read, nothing is exported
            self.collectors = []
        else:
            self.collectors = build_collectors(config, reg) if collectors is None else collectors
        exporters = set() if config.sdk_disabled else set(config.exporters)
        readers: list[MetricReader] = []
        self.page: PrometheusPage | None = None
        if "prometheus" in exporters:
            self.page = PrometheusPage(scope_labels=config.scope_labels and config.naming == "otel")
            readers.append(self.page.reader)
        self.pushes = push_exporters(exporters, config.otlp_protocol, config.otlp_endpoint)
        readers.extend(p.reader for p in self.pushes)
        resource = resource or config.resource or build_resource({})
        self.provider = meter_provider(resource, readers)
        # The exporter's own process_* / process.* and build info, unless --web.disable-exporter-metrics.
        own = []
        self.process: SourceWorker | None = None
        if not config.sdk_disabled and not config.disable_exporter_metrics:
            from otel_bare_metal.process import SPEC as PROCESS

            self.process = SourceWorker(PROCESS.name, PROCESS.source(config.paths(), {}))
            own.append((self.process, PROCESS))
        # With OTEL_SDK_DISABLED there are no collectors and no readers: nothing is ever read.
        self.collection = instrument(self.provider.get_meter(SCOPE, __version__), self.collectors, naming=config.naming,
                                     registry=reg, unmonitored=own)
        self.collection.stuck_after = config.stuck_after
        if self.page is not None:
            self.page.collection = self.collection
        # Routes the collectors' specs hand over (served beside /metrics, whether they run or not).
        self.collector_routes: dict[str, Route] = {}
        for spec in reg.specs:
            if spec.routes is not None:
                context = RouteContext(config.options_for(spec), resource, config.naming, PrometheusPage)
                self.collector_routes.update((route.path, route) for route in spec.routes(context))
        self.server: HTTPServer | None = None

    def _metrics_route(self, request: Request) -> Route | None:
        """The collector route that answers this ``/metrics`` request (``/metrics?<its param>=``), if any."""
        for route in self.collector_routes.values():
            if route.metrics_param and route.metrics_param in request.query:
                return route
        return None

    def limit_key(self, request: Request) -> str:
        """The budget a request counts against: its path's, or that of the route answering it."""
        if request.path == self.config.telemetry_path:
            route = self._metrics_route(request)
            if route is not None:
                return route.path
        return request.path

    def metrics(self, request: Request) -> Response:
        route = self._metrics_route(request)  # a route may also answer /metrics?<its param>=
        if route is not None:
            return self._serve(route, request)
        if self.config.sdk_disabled:
            return Response(404, b"metrics are off: OTEL_SDK_DISABLED=true\n")
        if self.page is None:
            return Response(404, b"the /metrics page is off (OTEL_METRICS_EXPORTER has no prometheus)\n")
        deadline = scrape_deadline(request.header(SCRAPE_TIMEOUT_HEADER), self.config.timeout_offset)
        try:
            body, content_type = self.page.render(request.header("accept"), deadline)
        except PageUnavailable as e:
            return Response(503, f"the collection failed and no earlier page exists yet: {e}\n".encode())
        return Response(200, body, content_type)

    def healthz(self, request: Request) -> Response:
        """503 while a source read has been stuck longer than ``stuck_after`` (a liveness probe
        then restarts the process); 200 otherwise."""
        stuck = self.collection.stuck()
        if stuck:
            names = ", ".join(f"{name} ({seconds:.0f}s)" for name, seconds in stuck)
            return Response(503, f"collection stuck: {names}\n".encode())
        return healthz(request)

    def _serve(self, route: Route, request: Request) -> Response:
        """A collector's route: the HTTP request in, its handler's status, body and type out."""
        if self.config.sdk_disabled:
            return Response(404, b"metrics are off: OTEL_SDK_DISABLED=true\n")
        deadline = scrape_deadline(request.header(SCRAPE_TIMEOUT_HEADER), self.config.timeout_offset)
        status, body, content_type = route.handler(request.query, request.header("accept") or None, deadline)
        return Response(status, body, content_type)

    def routes(self) -> dict:
        path = self.config.telemetry_path
        links = {path: "Metrics"}
        links.update((r.example or r.path, r.title or r.path) for r in self.collector_routes.values())
        links["/healthz"] = "Health"
        routes = {"/": landing_page("otel-bare-metal", links), "/healthz": self.healthz, path: self.metrics}
        for route in self.collector_routes.values():
            routes[route.path] = functools.partial(self._serve, route)
        return routes

    def start(self) -> "App":
        """Serve.  Raises WebConfigError for a broken --web.config.file, OSError when the port is taken."""
        self.web_config = None
        if self.config.web_config_file:
            # Imported only when asked for: YAML and bcrypt are 2.5 MB of a 35 MB process (bench/start_memory.py).
            from otel_bare_metal.server.webconfig import WebConfigWatcher

            self.web_config = WebConfigWatcher(self.config.web_config_file)
        limits = Limits(max_connections=self.config.max_connections, max_requests=self.config.max_requests)
        # Only /metrics counts against --web.max-requests: a collector's route has a budget of its own
        # (its own flag), also when it answers /metrics?<its param>=, so however it is used,
        # Prometheus always finds room to scrape.
        scrapes = (self.config.telemetry_path,)
        budgets = {route.path: ConcurrencyLimit(route.limit, route.limit_name)
                   for route in self.collector_routes.values() if route.limit is not None}
        web = self.web_config
        listen: Sequence[Listener] = self.config.listen_address
        if self.config.systemd_socket:  # the sockets a .socket unit passes, instead of binding our own
            from otel_bare_metal.systemd import listen_fds

            listen = listen_fds()
        self.server = HTTPServer(
            listen, self.routes(), limits=limits, scrape_paths=scrapes,
            route_limits=budgets, limit_key=self.limit_key,
            ssl_context=web.ssl_context if web else None, verify_peer=web.verify_peer if web else None,
            authorize=web.authorize if web else None, response_headers=web.response_headers if web else None,
        ).start()  # fmt: skip
        self.log_start()  # once serving: a start-up failure stays one line
        for address in self.server.addresses:
            log.info("listening", extra=log_fields(address=address, tls=self.server_tls(), telemetry_path=self.config.telemetry_path))
        self.log_exporters()
        return self

    def log_start(self) -> None:
        """One line: the version, the enabled collectors and what each describes of itself
        (``CollectorSpec.describe``: a collector's configured devices, say)."""
        specs = [] if self.config.sdk_disabled else [spec for spec in self.registry.specs if self.config.enabled(spec)]
        enabled = [spec.name for spec in specs]
        described: dict[str, str] = {}
        for spec in specs:
            if spec.describe is not None:
                described.update(spec.describe(self.config.options_for(spec)))
        log.info("starting otel-bare-metal", extra=log_fields(
            version=__version__, python=platform.python_version(), collectors=",".join(enabled) or "none",
            **described, naming=self.config.naming))

    def healthy(self) -> bool:
        """Serving and no source read stuck (what /healthz says; the systemd watchdog pings on it)."""
        return self.server is not None and self.server.serving and not self.collection.stuck()

    def server_tls(self) -> bool:
        return self.web_config is not None and self.web_config.tls_enabled

    def log_exporters(self) -> None:
        """One line naming every active exporter and where it sends (or the one line saying
        that OTEL_SDK_DISABLED switched everything off)."""
        if self.config.sdk_disabled:
            paths = " and ".join([self.config.telemetry_path, *self.collector_routes])
            log.warning("the OpenTelemetry SDK is disabled: no metrics are collected or exported; those paths answer 404",
                        extra=log_fields(variable="OTEL_SDK_DISABLED", value="true", paths=paths))
            return
        where: dict[str, str] = {}
        if self.page is not None and self.server is not None:
            scheme = "https" if self.server_tls() else "http"
            urls = []
            for address in self.server.addresses:
                address = "*" + address if address.startswith(":") else address  # ":9464": every interface
                urls.append(f"{scheme}://{address}{self.config.telemetry_path}")
            where["prometheus"] = "pull " + " ".join(urls)
        for push in self.pushes:
            where[push.name] = push.destination
        log.info("metrics exporters", extra=log_fields(exporters=",".join(where) or "none", **where))

    def close(self, grace: float = 5.0) -> None:
        """Stop serving (requests in flight get ``grace`` seconds to finish), push one last OTLP export
        (bounded by the export timeout), release sources."""
        if self.server is not None:
            self.server.shutdown(grace)
        timeout = max((export_timeout_millis(p.reader) / 1000 for p in self.pushes), default=5.0)
        done = threading.Thread(target=self.provider.shutdown, kwargs={"timeout_millis": timeout * 1000}, daemon=True)
        done.start()
        done.join(timeout + 1)
        if done.is_alive():
            log.warning("OTLP flush did not finish in time; exiting anyway", extra=log_fields(timeout_seconds=timeout))
        for route in self.collector_routes.values():
            if route.close is not None:
                route.close()
        for c in self.collectors + ([self.process] if self.process is not None else []):
            c.close()
