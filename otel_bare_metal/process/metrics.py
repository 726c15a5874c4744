"""The exporter's own process as metrics: the rows and the observers that map a ProcessStat.

OpenTelemetry naming uses the semantic conventions' process metrics (``process.cpu.time``,
``process.memory.usage``, ``process.memory.virtual``, ``process.unix.file_descriptor.count``,
``process.uptime``); what they do not define carries the project's namespace
(``otel_bare_metal.process.file_descriptor.limit`` and ``.utilization``,
``otel_bare_metal.build.info``).  Classic naming gives the names every Prometheus client library
uses (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ``process_open_fds``,
``process_max_fds``, ``process_start_time_seconds``, ``process_virtual_memory_bytes``) and
``otel_bare_metal_build_info`` shaped like ``node_exporter_build_info``.
"""

from __future__ import annotations

import math
from typing import Iterable

from opentelemetry.metrics import Observation

from otel_bare_metal.process.source import ProcessStat
from otel_bare_metal.telemetry.collection import Observer, SourceWorker
from otel_bare_metal.telemetry.definitions import Classic, Kind, Metric

COLLECTOR = "process"
NONE: dict[str, str] = {}


def _classic(name: str, description: str, labels: dict[str, str] | None = None,
             kind: Kind | None = Kind.GAUGE) -> tuple[Classic, ...]:
    return (Classic(name, labels or {}, description, kind=kind),)


BUILD_LABELS = {"version": "version", "revision": "revision", "process.runtime.name": "pythonimplementation",
                "process.runtime.version": "pythonversion"}

CPU_TIME = Metric(
    "process.cpu.time", Kind.COUNTER, "s", "CPU seconds the exporter process has used, by mode (user, system).",
    ("cpu.mode",), COLLECTOR,
    classic=_classic("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", kind=None))
MEMORY_USAGE = Metric(
    "process.memory.usage", Kind.UPDOWN, "By", "Resident memory of the exporter process (RSS).", (), COLLECTOR,
    classic=_classic("process_resident_memory_bytes", "Resident memory size in bytes."))
MEMORY_VIRTUAL = Metric(
    "process.memory.virtual", Kind.UPDOWN, "By", "Virtual memory of the exporter process.", (), COLLECTOR,
    classic=_classic("process_virtual_memory_bytes", "Virtual memory size in bytes."))
FD_COUNT = Metric(
    "process.unix.file_descriptor.count", Kind.UPDOWN, "{file_descriptor}",
    "File descriptors the exporter process has open.", (), COLLECTOR,
    prometheus="process_unix_file_descriptors",
    classic=_classic("process_open_fds", "Number of open file descriptors."))
FD_LIMIT = Metric(
    "otel_bare_metal.process.file_descriptor.limit", Kind.UPDOWN, "{file_descriptor}",
    "File descriptors the exporter process may open (the soft RLIMIT_NOFILE).", (), COLLECTOR,
    classic=_classic("process_max_fds", "Maximum number of open file descriptors."))
FD_UTILIZATION = Metric(
    "otel_bare_metal.process.file_descriptor.utilization", Kind.GAUGE, "1",
    "Open file descriptors as a fraction of the limit (0 to 1).", (), COLLECTOR)
UPTIME = Metric("process.uptime", Kind.GAUGE, "s", "Seconds since the exporter process started.", (), COLLECTOR)
START_TIME = Metric(
    "otel_bare_metal.process.start_time", Kind.GAUGE, "s",
    "Classic mode only. When the exporter process started, in seconds since the epoch.", (), COLLECTOR,
    classic=_classic("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
    classic_only=True)
BUILD_INFO = Metric(
    "otel_bare_metal.build.info", Kind.GAUGE, "",
    "Always 1; the exporter's version, source revision (unknown unless the installer recorded it) and the "
    "Python that runs it as attributes.", tuple(BUILD_LABELS), COLLECTOR,
    classic=_classic("otel_bare_metal_build_info",
                     "A metric with a constant '1' value labeled by version, revision and the Python version "
                     "and implementation from which otel_bare_metal was built.", BUILD_LABELS))

METRICS: tuple[Metric, ...] = (CPU_TIME, MEMORY_USAGE, MEMORY_VIRTUAL, FD_COUNT, FD_LIMIT, FD_UTILIZATION, UPTIME,
                               START_TIME, BUILD_INFO)


class ProcessObservers:
    """Observations of the exporter's own process from the collection's ProcessStat."""

    def __init__(self, collector: SourceWorker):
        self._collector = collector
        self._user = {"cpu.mode": "user"}
        self._system = {"cpu.mode": "system"}
        self._build_key: object = None  # the Build record the attributes were made from
        self._build_attrs: dict[str, str] = {}

    def _stat(self) -> ProcessStat | None:
        return self._collector.result

    def _one(self, value_of) -> Iterable[Observation]:
        stat = self._stat()
        if stat is None:
            return []
        value = value_of(stat)
        return [] if value is None else [Observation(value)]

    def cpu_time(self) -> Iterable[Observation]:
        stat = self._stat()
        return [] if stat is None else [Observation(stat.cpu_user, self._user), Observation(stat.cpu_system, self._system)]

    def memory_usage(self) -> Iterable[Observation]:
        return self._one(lambda s: s.resident_bytes)

    def memory_virtual(self) -> Iterable[Observation]:
        return self._one(lambda s: s.virtual_bytes)

    def fd_count(self) -> Iterable[Observation]:
        return self._one(lambda s: s.open_fds)

    def fd_limit(self) -> Iterable[Observation]:
        return self._one(lambda s: None if s.max_fds is None or math.isinf(s.max_fds) else s.max_fds)

    def fd_utilization(self) -> Iterable[Observation]:
        def ratio(s: ProcessStat) -> float | None:
            if s.open_fds is None or not s.max_fds or math.isinf(s.max_fds):
                return None
            return s.open_fds / s.max_fds

        return self._one(ratio)

    def uptime(self) -> Iterable[Observation]:
        return self._one(lambda s: s.uptime)

    def start_time(self) -> Iterable[Observation]:
        return self._one(lambda s: s.start_time)

    def build_info(self) -> Iterable[Observation]:
        stat = self._stat()
        if stat is None:
            return []
        if stat.build is not self._build_key:
            b = stat.build
            self._build_key = b
            self._build_attrs = {"version": b.version, "revision": b.revision, "process.runtime.name": b.runtime_name,
                                 "process.runtime.version": b.runtime_version}
        return [Observation(1, self._build_attrs)]

    def observers(self) -> dict[Metric, Observer]:
        return {
            CPU_TIME: self.cpu_time,
            MEMORY_USAGE: self.memory_usage,
            MEMORY_VIRTUAL: self.memory_virtual,
            FD_COUNT: self.fd_count,
            FD_LIMIT: self.fd_limit,
            FD_UTILIZATION: self.fd_utilization,
            UPTIME: self.uptime,
            START_TIME: self.start_time,
            BUILD_INFO: self.build_info,
        }
