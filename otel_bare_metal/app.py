"""Wires sources, telemetry and exposition into one running exporter.

Everything is built from a ``Config`` value: no global state.  Tests build an ``Exporter`` on
fixture trees and an ephemeral port; the command line builds one from flags.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Mapping

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from otel_bare_metal import __version__
from otel_bare_metal.exposition.http import HTTPServer, Request, Response, healthz, landing_page
from otel_bare_metal.exposition.otlp import otlp_reader
from otel_bare_metal.exposition.prometheus import PrometheusPage
from otel_bare_metal.sources import cpu_source, filesystem_source
from otel_bare_metal.sources.filesystem import DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE, MountFilter
from otel_bare_metal.telemetry import Collector, instrument
from otel_bare_metal.telemetry.resource import build_resource

log = logging.getLogger(__name__)

SCOPE = "otel_bare_metal"


@dataclass
class Config:
    listen_address: str = ":9464"
    telemetry_path: str = "/metrics"
    procfs: str = "/proc"
    sysfs: str = "/sys"
    rootfs: str = "/"
    collectors: dict[str, bool] = field(default_factory=lambda: {"cpu": True, "filesystem": True})
    mount_points_exclude: str = DEFAULT_MOUNT_POINTS_EXCLUDE
    fs_types_exclude: str = DEFAULT_FS_TYPES_EXCLUDE
    mount_points_include: str = ""
    fs_types_include: str = ""
    mount_timeout: float = 5.0
    scope_labels: bool = False
    platform: str = sys.platform
    exporters: set[str] = field(default_factory=lambda: {"prometheus"})  # see exposition/otlp.selected_exporters
    otlp_endpoint: str = ""
    otlp_protocol: str = ""


def build_collectors(config: Config) -> list[Collector]:
    collectors = []
    if config.collectors.get("cpu"):
        collectors.append(Collector("cpu", cpu_source(config.procfs, platform=config.platform)))
    if config.collectors.get("filesystem"):
        mount_filter = MountFilter(
            mount_points_exclude=config.mount_points_exclude,
            fs_types_exclude=config.fs_types_exclude,
            mount_points_include=config.mount_points_include,
            fs_types_include=config.fs_types_include,
        )
        source = filesystem_source(config.procfs, config.rootfs, mount_filter, config.mount_timeout, platform=config.platform)
        collectors.append(Collector("filesystem", source))
    return collectors


class Exporter:
    """One MeterProvider, its instruments, the Prometheus page and the HTTP server."""

    def __init__(
        self,
        config: Config,
        resource: Resource | None = None,
        collectors: list[Collector] | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        self.config = config
        environ = os.environ if environ is None else environ
        self.collectors = build_collectors(config) if collectors is None else collectors
        readers = []
        self.page: PrometheusPage | None = None
        if "prometheus" in config.exporters:
            self.page = PrometheusPage(scope_labels=config.scope_labels)
            readers.append(self.page.reader)
        self.push: PeriodicExportingMetricReader | None = None
        if "otlp" in config.exporters:
            self.push = otlp_reader(environ, config.otlp_endpoint, config.otlp_protocol)
            readers.append(self.push)
        self.provider = MeterProvider(resource=resource or build_resource(), metric_readers=readers)
        instrument(self.provider.get_meter(SCOPE, __version__), self.collectors)
        self.server: HTTPServer | None = None

    def metrics(self, request: Request) -> Response:
        assert self.page is not None
        body, content_type = self.page.render(request.header("accept"))
        return Response(200, body, content_type)

    def routes(self) -> dict:
        path = self.config.telemetry_path
        routes = {
            "/": landing_page("otel-bare-metal", {path: "Metrics", "/healthz": "Health"}),
            "/healthz": healthz,
        }
        if self.page is not None:  # with OTEL_METRICS_EXPORTER=otlp there is no /metrics page
            routes[path] = self.metrics
        return routes

    def start(self) -> "Exporter":
        self.server = HTTPServer(self.config.listen_address, self.routes()).start()
        log.info("listening on %s, metrics at %s", self.config.listen_address, self.config.telemetry_path)
        return self

    def close(self) -> None:
        """Stop serving, push one last OTLP export (bounded by the export timeout), release sources."""
        if self.server is not None:
            self.server.shutdown()
        timeout = self.push._export_timeout_millis / 1000 if self.push is not None else 5.0
        done = threading.Thread(target=self.provider.shutdown, kwargs={"timeout_millis": timeout * 1000}, daemon=True)
        done.start()
        done.join(timeout + 1)
        if done.is_alive():
            log.warning("OTLP flush did not finish within %.1fs; exiting anyway", timeout)
        for c in self.collectors:
            c.close()
