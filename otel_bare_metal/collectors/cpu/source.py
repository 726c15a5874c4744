"""The CPU source: per-CPU times from ``<procfs>/stat`` (psutil elsewhere, ``fallback.py``).

``/proc/stat`` counters can go backwards: iowait is documented to (proc(5)), and some
hypervisors do it to other columns.  Exported as is, Prometheus would read each dip as a
counter reset and ``rate()`` would spike.  Like node_exporter, the source keeps, per CPU and
mode (guest columns included), the largest value seen and exports that; a dip is logged at
debug level.  A CPU that disappears (taken offline) and comes back starts again from its new
value: its times restarted with it, and Prometheus handles that one reset.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from otel_bare_metal.procfs import CPUStat, CPUTimes, read_stat

log = logging.getLogger(__name__)


def user_hz() -> int:
    """USER_HZ, the unit of /proc/stat ticks (100 on almost every kernel)."""
    return os.sysconf("SC_CLK_TCK")


class CounterHold:
    """Per CPU, the largest value seen of every column; forgets a CPU that is gone."""

    def __init__(self) -> None:
        self._seen: dict[int, dict[str, float]] = {}

    def apply(self, stat: CPUStat) -> CPUStat:
        seen: dict[int, dict[str, float]] = {}
        cpus = [self._hold(times, seen) for times in stat.cpus]
        self._seen = seen  # CPUs absent from this reading restart from their next value
        return replace(stat, cpus=cpus)

    def _hold(self, times: CPUTimes, seen: dict[int, dict[str, float]]) -> CPUTimes:
        now = dict(times.modes)
        if times.guest is not None:
            now["guest"] = times.guest
        if times.guest_nice is not None:
            now["guest_nice"] = times.guest_nice
        seen[times.cpu] = now
        before = self._seen.get(times.cpu)
        if before is None:
            return times
        dips = [mode for mode, value in now.items() if value < before.get(mode, value)]
        if not dips:  # the common case: every counter went up or stayed
            return times
        for mode in dips:
            log.debug("CPU counter jumped backwards; keeping the larger value",
                      extra={"cpu": times.cpu, "mode": mode, "from": before[mode], "to": now[mode]})
            now[mode] = before[mode]
        return CPUTimes(times.cpu, {mode: now[mode] for mode in times.modes},
                        None if times.guest is None else now["guest"],
                        None if times.guest_nice is None else now["guest_nice"])


class HeldCPUSource:
    """Any CPU source (the psutil fallback, say) with the same rule: counters never go back."""

    def __init__(self, source) -> None:
        self.source = source
        self._hold = CounterHold()

    def read(self) -> CPUStat:
        return self._hold.apply(self.source.read())

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close:
            close()


class ProcfsCPUSource:
    """Reads ``<procfs>/stat`` once per call and returns every CPU the kernel lists, each
    counter held at the largest value seen (see the module docstring).

    ``nonblocking``: ``stat`` is generated in memory by the kernel, a read never waits on a
    device, so a collection may read it on its own thread (``telemetry.collection``)."""

    nonblocking = True

    def __init__(self, procfs: str = "/proc", hz: float | None = None):
        self.procfs = procfs
        self.hz = hz if hz is not None else user_hz()
        self._hold = CounterHold()

    def read(self) -> CPUStat:
        return self._hold.apply(read_stat(self.procfs, self.hz))

    def close(self) -> None:
        pass
