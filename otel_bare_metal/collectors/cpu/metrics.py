"""The cpu collector's metrics: its rows (name, kind, unit, attributes, classic names) and the
observers that map ``procfs.CPUStat`` records to them.

Attribute dicts are built once per CPU (one per mode) and reused on every collection.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Iterable

from opentelemetry.metrics import Observation

from otel_bare_metal.procfs import CPUStat
from otel_bare_metal.telemetry.collection import SourceWorker, Observer
from otel_bare_metal.telemetry.definitions import Classic, Kind, Metric

# /proc/stat column → semantic-convention ``cpu.mode`` value.  ``irq`` is the convention's
# ``interrupt``; ``softirq`` has no convention value and keeps its kernel name (the SourceWorker's
# hostmetrics receiver does the same).
CPU_MODES = MappingProxyType({
    "user": "user",
    "nice": "nice",
    "system": "system",
    "idle": "idle",
    "iowait": "iowait",
    "irq": "interrupt",
    "softirq": "softirq",
    "steal": "steal",
})

CPU = ("cpu.logical_number", "cpu.mode")
CLASSIC_CPU = MappingProxyType({"cpu.logical_number": "cpu", "cpu.mode": "mode"})
# node_exporter keeps the kernel column names as ``mode``.
CLASSIC_CPU_MODES = MappingProxyType({"cpu.mode": {ours: kernel for kernel, ours in CPU_MODES.items()}})

TIME = Metric(
    "system.cpu.time", Kind.COUNTER, "s",
    "Seconds each logical CPU spent in each mode (from /proc/stat; guest time is inside user and nice).",
    CPU, "cpu",
    classic=(Classic("node_cpu_seconds_total", CLASSIC_CPU, "Seconds the CPUs spent in each mode.",
                     values=CLASSIC_CPU_MODES),))
GUEST_TIME = Metric(
    "system.cpu.guest.time", Kind.COUNTER, "s",
    "Seconds each logical CPU spent running guests (cpu.mode user or nice); already counted in system.cpu.time.",
    CPU, "cpu",
    classic=(Classic("node_cpu_guest_seconds_total", CLASSIC_CPU,
                     "Seconds the CPUs spent in guests (VMs) for each mode."),))
LOGICAL_COUNT = Metric(
    "system.cpu.logical.count", Kind.UPDOWN, "{cpu}",
    "Number of logical CPUs the kernel reports as online.", (), "cpu",
    prometheus="system_cpu_logical_cpus")

METRICS: tuple[Metric, ...] = (TIME, GUEST_TIME, LOGICAL_COUNT)


class CPUObservers:
    def __init__(self, worker: SourceWorker):
        self._worker = worker
        # per CPU: kernel column (and "guest"/"guest_nice") → its attribute dict, built once
        self._attrs: dict[int, dict[str, dict[str, int | str]]] = {}

    def _of(self, cpu: int) -> dict[str, dict[str, int | str]]:
        attrs = self._attrs.get(cpu)
        if attrs is None:
            attrs = self._attrs[cpu] = {column: {"cpu.logical_number": cpu, "cpu.mode": mode} for column, mode in CPU_MODES.items()}
            attrs["guest"], attrs["guest_nice"] = attrs["user"], attrs["nice"]
        return attrs

    def _stat(self) -> CPUStat | None:
        return self._worker.result

    def time(self) -> Iterable[Observation]:
        stat = self._stat()
        if stat is None:
            return []
        of = self._of
        out = []
        for c in stat.cpus:
            attrs = of(c.cpu)
            out.extend([Observation(seconds, attrs[column]) for column, seconds in c.modes.items()])
        return out

    def guest_time(self) -> Iterable[Observation]:
        stat = self._stat()
        if stat is None:
            return []
        out = []
        for c in stat.cpus:
            attrs = self._of(c.cpu)
            if c.guest is not None:
                out.append(Observation(c.guest, attrs["guest"]))
            if c.guest_nice is not None:
                out.append(Observation(c.guest_nice, attrs["guest_nice"]))
        return out

    def logical_count(self) -> Iterable[Observation]:
        stat = self._stat()
        return [] if stat is None else [Observation(len(stat.cpus))]

    def observers(self) -> dict[Metric, Observer]:
        return {
            TIME: self.time,
            GUEST_TIME: self.guest_time,
            LOGICAL_COUNT: self.logical_count,
        }
