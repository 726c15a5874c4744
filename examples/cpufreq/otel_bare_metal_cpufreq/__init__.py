"""An otel-bare-metal collector plugin: CPU frequency from sysfs.

Installed next to otel-bare-metal, it adds ``--[no-]collector.cpufreq`` (off by default;
``OTEL_BARE_METAL_COLLECTOR_CPUFREQ=true``) and three gauges per CPU that has cpufreq:

* ``system.cpu.frequency`` (Hz): the current frequency (``scaling_cur_freq``);
* ``system.cpu.frequency.scaling_min`` / ``.scaling_max`` (Hz): the governor's limits.

It reads ``--path.sysfs`` (``/host/sys`` in a container).  Classic names are node_exporter's
cpufreq collector's: ``node_cpu_scaling_frequency_hertz``, ``…_min_hertz``, ``…_max_hertz``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Iterable

from opentelemetry.metrics import Observation

from otel_bare_metal.registry import CollectorSpec, Options, Paths
from otel_bare_metal.telemetry.definitions import Classic, Kind, Metric

from otel_bare_metal_cpufreq.source import CPUFrequencies, SysfsCPUFreqSource

NAME = "cpufreq"
CPU = ("cpu.logical_number",)
CLASSIC_CPU = MappingProxyType({"cpu.logical_number": "cpu"})

FREQUENCY = Metric(
    "system.cpu.frequency", Kind.GAUGE, "Hz", "Current frequency of each logical CPU (cpufreq scaling_cur_freq).", CPU, NAME,
    classic=(Classic("node_cpu_scaling_frequency_hertz", CLASSIC_CPU, "Current scaled CPU thread frequency in hertz."),))
SCALING_MIN = Metric(
    "system.cpu.frequency.scaling_min", Kind.GAUGE, "Hz", "Lowest frequency the cpufreq governor may choose (scaling_min_freq).",
    CPU, NAME,
    classic=(Classic("node_cpu_scaling_frequency_min_hertz", CLASSIC_CPU, "Minimum scaled CPU thread frequency in hertz."),))
SCALING_MAX = Metric(
    "system.cpu.frequency.scaling_max", Kind.GAUGE, "Hz", "Highest frequency the cpufreq governor may choose (scaling_max_freq).",
    CPU, NAME,
    classic=(Classic("node_cpu_scaling_frequency_max_hertz", CLASSIC_CPU, "Maximum scaled CPU thread frequency in hertz."),))
METRICS = (FREQUENCY, SCALING_MIN, SCALING_MAX)


class CPUFreqObservers:
    """Maps the source's records (``worker.result``) to observations, one function per metric row."""

    def __init__(self, worker):
        self._worker = worker
        self._attrs: dict[int, dict[str, int]] = {}

    def _field(self, name: str):
        def observe() -> Iterable[Observation]:
            freqs: CPUFrequencies | None = self._worker.result
            if freqs is None:
                return []
            out = []
            for c in freqs.cpus:
                if name in c.hertz:
                    attrs = self._attrs.get(c.cpu) or self._attrs.setdefault(c.cpu, {"cpu.logical_number": c.cpu})
                    out.append(Observation(c.hertz[name], attrs))
            return out

        return observe

    def observers(self):
        return {FREQUENCY: self._field("cur"), SCALING_MIN: self._field("min"), SCALING_MAX: self._field("max")}


def _source(paths: Paths, options: Options) -> SysfsCPUFreqSource:
    return SysfsCPUFreqSource(paths.sysfs)


COLLECTOR = CollectorSpec(
    name=NAME,
    source=_source,
    observers=CPUFreqObservers,
    metrics=METRICS,
    default_enabled=False,
    title="CPU frequency (`--collector.cpufreq`, plugin otel-bare-metal-cpufreq)",
    docs="Read from `<--path.sysfs>/devices/system/cpu/cpuN/cpufreq/scaling_{cur,min,max}_freq` (kHz × 1000).\n"
         "CPUs without cpufreq (most virtual machines) have no series.",
)
