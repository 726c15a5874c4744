"""The definitions table: the single source of truth for every metric this exporter exports.

Name, instrument kind, unit, attributes and description live here and nowhere else.  The
telemetry modules look their instruments up in this table, and ``docs/metrics.md`` is
generated from it (``python -m otel_bare_metal.docgen``; a test keeps the two in step).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    COUNTER = "counter"  # observable counter: monotonic cumulative sum
    UPDOWN = "updowncounter"  # observable up-down counter: non-monotonic sum (a gauge in Prometheus)
    GAUGE = "gauge"  # observable gauge


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...]
    collector: str
    # The Prometheus name when the reader's own translation would be wrong: a name ending in
    # ``_count`` (``system.cpu.logical.count``) is reserved for histograms and summaries, and
    # promtool rejects it.  The OTLP name stays the semantic-convention one.
    prometheus: str | None = None

    @property
    def prometheus_name(self) -> str:
        """The name on /metrics: the OpenTelemetry Prometheus reader's translation
        (dots → underscores, unit suffix, ``_total`` on counters) unless overridden."""
        from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_full_name

        if self.prometheus:
            return self.prometheus
        name = sanitize_full_name(self.name)
        unit = map_unit(self.unit)
        if unit and not name.endswith("_" + unit):
            name += "_" + unit
        return name + "_total" if self.kind is Kind.COUNTER else name


CPU = ("cpu.logical_number", "cpu.mode")
FS = ("system.device", "system.filesystem.mountpoint", "system.filesystem.type", "system.filesystem.mode")

# /proc/stat column → semantic-convention ``cpu.mode`` value.  ``irq`` is the convention's
# ``interrupt``; ``softirq`` has no convention value and keeps its kernel name (the Collector's
# hostmetrics receiver does the same).
CPU_MODES = {
    "user": "user",
    "nice": "nice",
    "system": "system",
    "idle": "idle",
    "iowait": "iowait",
    "irq": "interrupt",
    "softirq": "softirq",
    "steal": "steal",
}

DEV = ("hdhomerun.device",)
TUNER = ("hdhomerun.device", "hdhomerun.tuner")


def _tuner(name: str, kind: Kind, unit: str, description: str, extra: tuple[str, ...] = ()) -> Metric:
    return Metric(name, kind, unit, description, TUNER + extra, "hdhomerun")


HDHOMERUN_METRICS: tuple[Metric, ...] = (
    Metric("hdhomerun.up", Kind.GAUGE, "1", "1 when the HDHomeRun device answered this collection, else 0.", DEV, "hdhomerun"),
    Metric("hdhomerun.scrape.duration", Kind.GAUGE, "s", "Time spent collecting this HDHomeRun device.", DEV, "hdhomerun"),
    Metric("hdhomerun.device.info", Kind.GAUGE, "1", "Always 1; the device's model, hardware model, firmware version and id as attributes.",
           DEV + ("hdhomerun.model", "hdhomerun.hwmodel", "hdhomerun.version", "hdhomerun.device_id"), "hdhomerun"),
    Metric("hdhomerun.tuner.count", Kind.GAUGE, "{tuner}", "Number of tuners the device has.", DEV, "hdhomerun",
           prometheus="hdhomerun_tuners"),
    _tuner("hdhomerun.tuner.info", Kind.GAUGE, "1", "Always 1; the channel asked for and the modulation locked (tun: line) as attributes.",
           ("hdhomerun.channel", "hdhomerun.lock")),
    _tuner("hdhomerun.tuner.signal_strength", Kind.GAUGE, "1", "Signal strength, 0 to 1 (ss / 100)."),
    _tuner("hdhomerun.tuner.signal_to_noise_quality", Kind.GAUGE, "1", "Signal-to-noise quality, 0 to 1 (snq / 100)."),
    _tuner("hdhomerun.tuner.symbol_quality", Kind.GAUGE, "1", "Symbol error quality, 0 to 1 (seq / 100; 1 = no errors)."),
    _tuner("hdhomerun.tuner.raw_rate", Kind.GAUGE, "By/s", "Raw channel rate (dev: bps / 8), where the firmware sends it."),
    _tuner("hdhomerun.tuner.transport_rate", Kind.GAUGE, "By/s", "Transport stream rate (ts: bps / 8)."),
    _tuner("hdhomerun.tuner.network_rate", Kind.GAUGE, "By/s", "Network stream rate (net: bps / 8), where the firmware sends it."),
    _tuner("hdhomerun.tuner.network_packet_rate", Kind.GAUGE, "{packet}/s", "Network packets sent per second (net: pps)."),
    _tuner("hdhomerun.tuner.resyncs", Kind.COUNTER, "{resync}", "Resynchronisations since the channel was set (dev: resync)."),
    _tuner("hdhomerun.tuner.overflows", Kind.COUNTER, "{overflow}", "Buffer overflows since the channel was set (dev: overflow)."),
    _tuner("hdhomerun.tuner.transport_errors", Kind.COUNTER, "{error}", "Transport stream errors since the channel was set (ts: te)."),
    _tuner("hdhomerun.tuner.crc_errors", Kind.COUNTER, "{error}", "Transport stream CRC errors since the channel was set (ts: crc)."),
    _tuner("hdhomerun.tuner.network_errors", Kind.COUNTER, "{packet}", "Network packets dropped since the stream started (net: err)."),
    _tuner("hdhomerun.tuner.stream_stop_reason", Kind.GAUGE, "1",
           "Why the network stream stopped (net: stop): 0 running, 1 intentional, 2 ICMP reject, 3 connection loss, 4 HTTP closed."),
    Metric("hdhomerun.cablecard.rate", Kind.GAUGE, "By/s", "CableCARD stream rate (cc: bps / 8); CableCARD models only.", DEV, "hdhomerun"),
    Metric("hdhomerun.cablecard.resyncs", Kind.COUNTER, "{resync}", "CableCARD resynchronisations (cc: resync).", DEV, "hdhomerun"),
    Metric("hdhomerun.cablecard.overflows", Kind.COUNTER, "{overflow}", "CableCARD buffer overflows (cc: overflow).", DEV, "hdhomerun"),
)

METRICS: tuple[Metric, ...] = (
    # Self-monitoring comes first: its callbacks read the sources once per collection (telemetry/collection.py).
    Metric("otel_bare_metal.collector.duration", Kind.GAUGE, "s",
           "Time the collector took to read its source in this collection.", ("collector",), "self"),
    Metric("otel_bare_metal.collector.success", Kind.GAUGE, "1",
           "1 when the collector read its source without error in this collection, else 0.", ("collector",), "self"),
    Metric("system.cpu.time", Kind.COUNTER, "s",
           "Seconds each logical CPU spent in each mode (from /proc/stat; guest time is inside user and nice).",
           CPU, "cpu"),
    Metric("system.cpu.guest.time", Kind.COUNTER, "s",
           "Seconds each logical CPU spent running guests (cpu.mode user or nice); already counted in system.cpu.time.",
           CPU, "cpu"),
    Metric("system.cpu.logical.count", Kind.UPDOWN, "{cpu}",
           "Number of logical CPUs the kernel reports as online.", (), "cpu",
           prometheus="system_cpu_logical_cpus"),
    Metric("system.filesystem.usage", Kind.UPDOWN, "By",
           "Filesystem space by state: used, free (available to unprivileged users) and reserved (for root).",
           FS + ("system.filesystem.state",), "filesystem"),
    Metric("system.filesystem.limit", Kind.UPDOWN, "By",
           "Total size of the filesystem (blocks × block size).", FS, "filesystem"),
    Metric("system.filesystem.utilization", Kind.GAUGE, "1",
           "Fraction of the space usable by unprivileged users that is used: used / (used + free), as df shows it.",
           FS, "filesystem"),
    Metric("system.filesystem.inodes.usage", Kind.UPDOWN, "{inode}",
           "Inodes by state: used and free.", FS + ("system.filesystem.state",), "filesystem"),
    Metric("system.filesystem.error", Kind.GAUGE, "1",
           "1 when statfs on the mount failed or timed out in this collection, else 0.", FS, "filesystem"),
    Metric("system.filesystem.timeout", Kind.GAUGE, "1",
           "1 when the mount did not answer statfs within the timeout and is skipped until it answers again (a hung mount).",
           FS, "filesystem"),
) + HDHOMERUN_METRICS

BY_NAME = {m.name: m for m in METRICS}


def metric(name: str) -> Metric:
    return BY_NAME[name]
