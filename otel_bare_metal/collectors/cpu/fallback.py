"""CPU times on systems without Linux procfs (macOS, the BSDs, Windows), through psutil.

It returns the same records as the procfs reader, so nothing above it changes.
"""

from __future__ import annotations

from otel_bare_metal.procfs import CPUStat, CPUTimes

# psutil field → kernel column name used in procfs.CPUTimes (absent fields are skipped).
_PSUTIL_MODES = {
    "user": "user", "nice": "nice", "system": "system", "idle": "idle", "iowait": "iowait",
    "irq": "irq", "interrupt": "irq", "softirq": "softirq", "steal": "steal", "dpc": "softirq",
}


class PsutilCPUSource:
    def __init__(self, psutil_module=None):
        import psutil

        self._psutil = psutil_module or psutil

    def read(self) -> CPUStat:
        cpus = []
        for index, times in enumerate(self._psutil.cpu_times(percpu=True)):
            fields = times._asdict()
            modes = {ours: float(fields[theirs]) for theirs, ours in _PSUTIL_MODES.items() if theirs in fields}
            cpus.append(CPUTimes(cpu=index, modes=modes, guest=fields.get("guest"), guest_nice=fields.get("guest_nice")))
        return CPUStat(cpus=cpus)

    def close(self) -> None:
        pass
