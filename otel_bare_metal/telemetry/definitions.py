"""The definitions table: the single source of truth for every metric this exporter exports.

Name, instrument kind, unit, attributes and description live here and nowhere else.  The
telemetry modules look their instruments up in this table, and ``docs/metrics.md`` is
generated from it (``python -m otel_bare_metal.docgen``; a test keeps the two in step).

Each row also carries its *classic* names (``--metrics.naming classic``): how node_exporter or
mdlayher/hdhomerun_exporter name and label the same figure.  A classic metric is derived from
the row's own observations by a declarative mapping (rename labels and values, keep or sum some
``state`` values, take the value from an attribute), so there is no second copy of any collector.

A row marked ``classic_only`` (node_exporter's ``mount_info``) exists only for its classic
metrics: ``telemetry.instrument`` leaves it and its observer out in OTel mode, so the binding
check still holds in both modes, and docs/metrics.md shows "— (classic only)" as its Prometheus name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


class Kind(enum.Enum):
    COUNTER = "counter"  # observable counter: monotonic cumulative sum
    UPDOWN = "updowncounter"  # observable up-down counter: non-monotonic sum (a gauge in Prometheus)
    GAUGE = "gauge"  # observable gauge


def _frozen(mapping: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Classic:
    """One classic (node_exporter / hdhomerun_exporter) metric derived from a row's observations."""

    name: str  # exactly as the classic exporter's page shows it
    labels: Mapping[str, str]  # our attribute → classic label; attributes not named are dropped
    description: str
    states: tuple[str, ...] = ()  # keep only these ``*.state`` values, summed (node free = free + reserved)
    values: Mapping[str, Mapping[object, str]] = field(default_factory=_frozen)  # attribute → {ours: classic}
    value_from: tuple[str, Mapping[str, float]] | None = None  # the value is this attribute, mapped
    kind: "Kind | None" = None  # when the classic exporter uses another kind (hdhomerun_exporter: all gauges)
    constant: Mapping[str, str] = field(default_factory=_frozen)  # labels with a fixed value


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
    # promtool rejects it.  The OTLP name stays the semantic-convention one (so through a
    # Collector it is ``system_cpu_logical_count``: alerts and dashboards do not use it).
    prometheus: str | None = None
    classic: tuple[Classic, ...] = ()
    # Registered only under ``--metrics.naming classic``, as its classic metrics: a figure that
    # exists for drop-in compatibility and has no OpenTelemetry counterpart (no semantic
    # convention, nothing in OTel mode to join it with).  The row still names the attributes its
    # observer gives, so the binding checks and docs/metrics.md cover it like any other row.
    classic_only: bool = False

    @property
    def prometheus_name(self) -> str:
        """The name on /metrics: the OpenTelemetry Prometheus reader's translation
        (dots → underscores, unit suffix, ``_total`` on counters) unless overridden."""
        from otel_bare_metal._otel_compat import map_unit, sanitize_full_name

        if self.prometheus:
            return self.prometheus
        name = sanitize_full_name(self.name)
        unit = map_unit(self.unit)
        if unit and not name.endswith("_" + unit):
            name += "_" + unit
        if self.ratio and not name.endswith("_ratio"):
            name += "_ratio"
        return name + "_total" if self.kind is Kind.COUNTER else name

    @property
    def ratio(self) -> bool:
        """A gauge with unit ``1``: a true ratio (0 to 1).  Prometheus's OTLP translation
        (``otlptranslator``, used by the Collector's ``prometheus`` and ``prometheus_remote_write``
        exporters and by Prometheus's own OTLP receiver) appends ``_ratio`` to it, and so do we on
        /metrics, so the name is the same on every path.  Everything else that is a plain number
        (up, info, state and error gauges) has no unit at all, so no path adds a suffix."""
        return self.unit == "1" and self.kind is Kind.GAUGE


CPU = ("cpu.logical_number", "cpu.mode")
FS = ("system.device", "system.filesystem.mountpoint", "system.filesystem.type", "system.filesystem.mode")
STATE = "system.filesystem.state"

CLASSIC_CPU = _frozen({"cpu.logical_number": "cpu", "cpu.mode": "mode"})
CLASSIC_FS = _frozen({"system.device": "device", "system.filesystem.type": "fstype", "system.filesystem.mountpoint": "mountpoint"})
# node_exporter 1.8+ labels every filesystem series with device_error: "" when statfs answered,
# else the error's text.  Ours is always "": a failing mount's reason goes to the log, and the
# series keeps one identity whatever the errno (docs/metrics.md).
CLASSIC_FS_CONST = _frozen({"device_error": ""})
# node_filesystem_mount_info's own label set: no fstype, no device_error, the device numbers.
MOUNT_NUMBERS = ("system.filesystem.device.major", "system.filesystem.device.minor")
CLASSIC_MOUNT_INFO = _frozen({"system.device": "device", "system.filesystem.device.major": "major",
                              "system.filesystem.device.minor": "minor", "system.filesystem.mountpoint": "mountpoint"})
# hdhomerun_exporter serves one device per scrape (``instance`` names it); our /metrics page can
# carry several configured devices, so there the device is a ``device`` label (dropped on /probe).
CLASSIC_DEV = _frozen({"hdhomerun.device": "device"})
CLASSIC_TUNER = _frozen({"hdhomerun.device": "device", "hdhomerun.tuner": "tuner"})

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


def _tuner(name: str, kind: Kind, unit: str, description: str, extra: tuple[str, ...] = (),
           classic: tuple[Classic, ...] = ()) -> Metric:
    return Metric(name, kind, unit, description, TUNER + extra, "hdhomerun", classic=classic)


def _c(name: str, labels: Mapping[str, str], description: str, kind: Kind | None = None) -> tuple[Classic, ...]:
    return (Classic(name, labels, description, kind=kind),)


# hdhomerun_exporter's names where it has the figure (all gauges there, counters included);
# our extra series follow its style.
HDHOMERUN_METRICS: tuple[Metric, ...] = (
    Metric("hdhomerun.up", Kind.GAUGE, "", "1 when the HDHomeRun device answered this collection, else 0.", DEV, "hdhomerun",
           classic=_c("hdhomerun_up", CLASSIC_DEV, "Whether the device answered (extra).")),
    Metric("hdhomerun.scrape.duration", Kind.GAUGE, "s", "Time spent collecting this HDHomeRun device.", DEV, "hdhomerun",
           classic=_c("hdhomerun_scrape_duration_seconds", CLASSIC_DEV, "Time spent collecting the device (extra).")),
    Metric("hdhomerun.device.info", Kind.GAUGE, "", "Always 1; the device's model, hardware model, firmware version and id as attributes.",
           DEV + ("hdhomerun.model", "hdhomerun.hwmodel", "hdhomerun.version", "hdhomerun.device_id"), "hdhomerun",
           classic=_c("hdhomerun_device_info", _frozen({**CLASSIC_DEV, "hdhomerun.model": "model"}), "Metadata about the device.")),
    Metric("hdhomerun.tuner.count", Kind.GAUGE, "{tuner}", "Number of tuners the device has.", DEV, "hdhomerun",
           prometheus="hdhomerun_tuners",
           classic=_c("hdhomerun_tuners", CLASSIC_DEV, "Number of tuners the device has (extra).")),
    _tuner("hdhomerun.tuner.info", Kind.GAUGE, "", "Always 1; the channel asked for and the modulation locked (tun: line) as attributes.",
           ("hdhomerun.channel", "hdhomerun.lock"),
           _c("hdhomerun_tuner_info", _frozen({**CLASSIC_TUNER, "hdhomerun.channel": "channel", "hdhomerun.lock": "lock"}),
              "Metadata about each of the tuners available to a device.")),
    _tuner("hdhomerun.tuner.signal_strength", Kind.GAUGE, "1", "Signal strength, 0 to 1 (ss / 100).",
           classic=_c("hdhomerun_tuner_signal_strength_ratio", CLASSIC_TUNER, "Television signal strength ratio for this tuner.")),
    _tuner("hdhomerun.tuner.signal_to_noise_quality", Kind.GAUGE, "1", "Signal-to-noise quality, 0 to 1 (snq / 100).",
           classic=_c("hdhomerun_tuner_signal_to_noise_ratio", CLASSIC_TUNER, "Television signal-to-noise ratio for this tuner.")),
    _tuner("hdhomerun.tuner.symbol_quality", Kind.GAUGE, "1", "Symbol error quality, 0 to 1 (seq / 100; 1 = no errors).",
           classic=_c("hdhomerun_tuner_symbol_error_ratio", CLASSIC_TUNER, "Television symbol error ratio for this tuner.")),
    _tuner("hdhomerun.tuner.raw_rate", Kind.GAUGE, "By/s", "Raw channel rate (dev: bps / 8), where the firmware sends it.",
           classic=_c("hdhomerun_tuner_raw_bytes_per_second", CLASSIC_TUNER, "Raw channel bytes per second (extra).")),
    _tuner("hdhomerun.tuner.transport_rate", Kind.GAUGE, "By/s", "Transport stream rate (ts: bps / 8).",
           classic=_c("hdhomerun_tuner_transport_bytes_per_second", CLASSIC_TUNER, "Transport stream bytes per second (extra).")),
    _tuner("hdhomerun.tuner.network_rate", Kind.GAUGE, "By/s", "Network stream rate (net: bps / 8), where the firmware sends it.",
           classic=_c("hdhomerun_network_bytes_per_second", CLASSIC_TUNER, "Bytes per second sent by the device for this tuner (extra).")),
    _tuner("hdhomerun.tuner.network_packet_rate", Kind.GAUGE, "{packet}/s", "Network packets sent per second (net: pps).",
           classic=_c("hdhomerun_network_packets_per_second", CLASSIC_TUNER,
                      "Number of packets per second being sent by the device for this tuner.")),
    _tuner("hdhomerun.tuner.resyncs", Kind.COUNTER, "{resync}", "Resynchronisations since the channel was set (dev: resync).",
           classic=_c("hdhomerun_tuner_resync_total", CLASSIC_TUNER, "Resynchronisations of this tuner (extra).")),
    _tuner("hdhomerun.tuner.overflows", Kind.COUNTER, "{overflow}", "Buffer overflows since the channel was set (dev: overflow).",
           classic=_c("hdhomerun_tuner_overflow_total", CLASSIC_TUNER, "Buffer overflows of this tuner (extra).")),
    _tuner("hdhomerun.tuner.transport_errors", Kind.COUNTER, "{error}", "Transport stream errors since the channel was set (ts: te).",
           classic=_c("hdhomerun_tuner_transport_errors_total", CLASSIC_TUNER, "Transport stream errors of this tuner (extra).")),
    _tuner("hdhomerun.tuner.crc_errors", Kind.COUNTER, "{error}", "Transport stream CRC errors since the channel was set (ts: crc).",
           classic=_c("hdhomerun_tuner_crc_errors_total", CLASSIC_TUNER, "Transport stream CRC errors of this tuner (extra).")),
    _tuner("hdhomerun.tuner.network_errors", Kind.COUNTER, "{packet}", "Network packets dropped since the stream started (net: err).",
           classic=_c("hdhomerun_network_errors", CLASSIC_TUNER, "Number of device network errors for this tuner.", Kind.GAUGE)),
    _tuner("hdhomerun.tuner.stream_stop_reason", Kind.GAUGE, "",
           "Why the network stream stopped (net: stop): 0 running, 1 intentional, 2 ICMP reject, 3 connection loss, 4 HTTP closed.",
           classic=_c("hdhomerun_network_stop_reason", CLASSIC_TUNER, "Why the network stream stopped (extra).")),
    Metric("hdhomerun.cablecard.rate", Kind.GAUGE, "By/s", "CableCARD stream rate (cc: bps / 8); CableCARD models only.", DEV, "hdhomerun",
           classic=_c("hdhomerun_cablecard_bytes_per_second", CLASSIC_DEV, "Number of bytes per second being received by the CableCARD.")),
    Metric("hdhomerun.cablecard.resyncs", Kind.COUNTER, "{resync}", "CableCARD resynchronisations (cc: resync).", DEV, "hdhomerun",
           classic=_c("hdhomerun_cablecard_resync", CLASSIC_DEV,
                      "Number of re-sync operations due to missing sync byte in transport stream for the CableCARD.", Kind.GAUGE)),
    Metric("hdhomerun.cablecard.overflows", Kind.COUNTER, "{overflow}", "CableCARD buffer overflows (cc: overflow).", DEV, "hdhomerun",
           classic=_c("hdhomerun_cablecard_overflow", CLASSIC_DEV, "Number of buffer overflows for the CableCARD.", Kind.GAUGE)),
)

# node_exporter keeps the kernel column names as ``mode``.
CLASSIC_CPU_MODES = _frozen({"cpu.mode": {ours: kernel for kernel, ours in CPU_MODES.items()}})

METRICS: tuple[Metric, ...] = (
    # Self-monitoring comes first: its callbacks read the sources once per collection (telemetry/collection.py).
    Metric("otel_bare_metal.collector.duration", Kind.GAUGE, "s",
           "Time the collector took to read its source in this collection.", ("collector",), "self",
           classic=(Classic("node_scrape_collector_duration_seconds", _frozen({"collector": "collector"}),
                            "node_exporter: Duration of a collector scrape."),)),
    Metric("otel_bare_metal.collector.success", Kind.GAUGE, "",
           "1 when the collector read its source without error in this collection, else 0.", ("collector",), "self",
           classic=(Classic("node_scrape_collector_success", _frozen({"collector": "collector"}),
                            "node_exporter: Whether a collector succeeded."),)),
    Metric("system.cpu.time", Kind.COUNTER, "s",
           "Seconds each logical CPU spent in each mode (from /proc/stat; guest time is inside user and nice).",
           CPU, "cpu",
           classic=(Classic("node_cpu_seconds_total", CLASSIC_CPU, "Seconds the CPUs spent in each mode.",
                            values=CLASSIC_CPU_MODES),)),
    Metric("system.cpu.guest.time", Kind.COUNTER, "s",
           "Seconds each logical CPU spent running guests (cpu.mode user or nice); already counted in system.cpu.time.",
           CPU, "cpu",
           classic=(Classic("node_cpu_guest_seconds_total", CLASSIC_CPU,
                            "Seconds the CPUs spent in guests (VMs) for each mode."),)),
    Metric("system.cpu.logical.count", Kind.UPDOWN, "{cpu}",
           "Number of logical CPUs the kernel reports as online.", (), "cpu",
           prometheus="system_cpu_logical_cpus"),
    Metric("system.filesystem.usage", Kind.UPDOWN, "By",
           "Filesystem space by state: used, free (available to unprivileged users) and reserved (for root).",
           FS + (STATE,), "filesystem",
           classic=(Classic("node_filesystem_free_bytes", CLASSIC_FS, "Filesystem free space in bytes.",
                            states=("free", "reserved"), constant=CLASSIC_FS_CONST),
                    Classic("node_filesystem_avail_bytes", CLASSIC_FS,
                            "Filesystem space available to non-root users in bytes.", states=("free",),
                            constant=CLASSIC_FS_CONST))),
    Metric("system.filesystem.limit", Kind.UPDOWN, "By",
           "Total size of the filesystem (blocks × block size).", FS, "filesystem",
           classic=(Classic("node_filesystem_size_bytes", CLASSIC_FS, "Filesystem size in bytes.", constant=CLASSIC_FS_CONST),)),
    Metric("system.filesystem.utilization", Kind.GAUGE, "1",
           "Fraction of the space usable by unprivileged users that is used: used / (used + free), as df shows it.",
           FS, "filesystem"),
    Metric("system.filesystem.inodes.usage", Kind.UPDOWN, "{inode}",
           "Inodes by state: used and free.", FS + (STATE,), "filesystem",
           classic=(Classic("node_filesystem_files", CLASSIC_FS, "Filesystem total file nodes.", states=("used", "free"),
                            constant=CLASSIC_FS_CONST),
                    Classic("node_filesystem_files_free", CLASSIC_FS, "Filesystem total free file nodes.",
                            states=("free",), constant=CLASSIC_FS_CONST))),
    Metric("system.filesystem.error", Kind.GAUGE, "",
           "1 when statfs on the mount failed or timed out in this collection, else 0.", FS, "filesystem",
           classic=(Classic("node_filesystem_device_error", CLASSIC_FS,
                            "Whether an error occurred while getting statistics for the given device.",
                            constant=CLASSIC_FS_CONST),
                    # like node_exporter 1.8+, for every mount, whether statfs answered or not
                    Classic("node_filesystem_readonly", CLASSIC_FS, "Filesystem read-only status.",
                            value_from=("system.filesystem.mode", _frozen({"ro": 1, "rw": 0})),
                            constant=CLASSIC_FS_CONST))),
    Metric("system.filesystem.timeout", Kind.GAUGE, "",
           "1 when the mount did not answer statfs within the timeout and is skipped until it answers again (a hung mount).",
           FS, "filesystem"),
    # node_exporter (collector/filesystem_common.go): 1 for every mount whose statfs answered,
    # major and minor as it scans them from mountinfo (%d:%d, printed in decimal).
    Metric("system.filesystem.mount.info", Kind.GAUGE, "",
           "Classic mode only. Always 1 for a mount whose statfs answered; its device numbers (mountinfo's major:minor) "
           "as attributes. Not on the psutil fallback (no device numbers there).",
           ("system.device", "system.filesystem.mountpoint") + MOUNT_NUMBERS, "filesystem",
           classic=_c("node_filesystem_mount_info", CLASSIC_MOUNT_INFO, "Filesystem mount information."),
           classic_only=True),
) + HDHOMERUN_METRICS


def of_collector(name: str) -> tuple[Metric, ...]:
    """The rows of one collector (``"self"``: the per-collector self-monitoring), in table order."""
    return tuple(m for m in METRICS if m.collector == name)
