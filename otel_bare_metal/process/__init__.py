"""The exporter's metrics about itself (``--web.disable-exporter-metrics`` turns them off).

Shaped like a collector (an OpenTelemetry-free source, rows bound to observers, a docs
section) and read in the same collection as every collector, but not one a user toggles with
``--collector.<name>``: like node_exporter's ``process_*`` and ``node_exporter_build_info``, it
is on unless the exporter-wide flag turns it off.  It is not counted in
``otel_bare_metal_collector_success`` / ``_duration``; a failed read is logged and its
series are left out.
"""

from __future__ import annotations

from otel_bare_metal.process.metrics import COLLECTOR, METRICS, ProcessObservers
from otel_bare_metal.process.source import process_source
from otel_bare_metal.registry import CollectorSpec

DOCS = "\n".join([
    "The exporter's own process, read once per collection (on Linux `/proc/self/stat`, the entries",
    "of `/proc/self/fd` and `getrlimit`, as the Prometheus client libraries do; psutil elsewhere), on",
    "every path (/metrics and OTLP). `--web.disable-exporter-metrics` (node_exporter's flag) leaves",
    "them all out. `/probe` pages never carry them.",
    "",
    "- OTel naming: the semantic conventions' `process.*` metrics; the file descriptor limit and",
    "  utilization and the build info, which the conventions do not define, are",
    "  `otel_bare_metal.*`. `process.unix.file_descriptor.count` is `process_unix_file_descriptors` on",
    "  /metrics (a gauge ending in `_count` fails promtool) and `process_unix_file_descriptor_count`",
    "  through a Collector; dashboards use `otel_bare_metal_process_file_descriptor_utilization_ratio`,",
    "  the same on every path. The conventions put the process's identity (`process.pid`, …) in the",
    "  resource; ours describes the service and the host, so these series are the exporter's by name.",
    "- Classic naming: the names every Prometheus client library uses (`process_cpu_seconds_total` is",
    "  user + system), and `otel_bare_metal_build_info` labelled like `node_exporter_build_info`",
    "  (`version`, `revision`, and `pythonversion` / `pythonimplementation` where Go programs have",
    "  `goversion`). `process_start_time_seconds` exists only in this mode (OTel mode has",
    "  `process.uptime`).",
    "- Not on Windows: file descriptors (the platform has handles instead).",
])

SPEC = CollectorSpec(
    name=COLLECTOR,
    source=lambda paths, options: process_source(paths.platform),
    observers=ProcessObservers,
    metrics=METRICS,
    title="Exporter process (on unless `--web.disable-exporter-metrics`)",
    docs=DOCS,
)

__all__ = ["SPEC", "METRICS", "ProcessObservers", "process_source"]
