"""Wires sources, telemetry and exposition into one running exporter.

Everything is built from a ``Config`` value: no global state.  Tests build an ``Exporter`` on
fixture trees and an ephemeral port; the command line builds one from flags.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource

from otel_bare_metal import __version__
from otel_bare_metal.exposition.http import HTTPServer, Request, Response, healthz, landing_page
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

    def __init__(self, config: Config, resource: Resource | None = None, collectors: list[Collector] | None = None):
        self.config = config
        self.collectors = build_collectors(config) if collectors is None else collectors
        self.page = PrometheusPage(scope_labels=config.scope_labels)
        self.provider = MeterProvider(resource=resource or build_resource(), metric_readers=[self.page.reader])
        instrument(self.provider.get_meter(SCOPE, __version__), self.collectors)
        self.server: HTTPServer | None = None

    def metrics(self, request: Request) -> Response:
        body, content_type = self.page.render(request.header("accept"))
        return Response(200, body, content_type)

    def routes(self) -> dict:
        path = self.config.telemetry_path
        return {
            path: self.metrics,
            "/": landing_page("otel-bare-metal", {path: "Metrics", "/healthz": "Health"}),
            "/healthz": healthz,
        }

    def start(self) -> "Exporter":
        self.server = HTTPServer(self.config.listen_address, self.routes()).start()
        log.info("listening on %s, metrics at %s", self.config.listen_address, self.config.telemetry_path)
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
        self.provider.shutdown()
        for c in self.collectors:
            c.close()
