"""The CPU source on Linux: per-CPU times from ``<procfs>/stat``."""

from __future__ import annotations

import os

from otel_bare_metal.sources.procfs import read_stat
from otel_bare_metal.sources.records import CPUStat


def user_hz() -> int:
    """USER_HZ, the unit of /proc/stat ticks (100 on almost every kernel)."""
    return os.sysconf("SC_CLK_TCK")


class ProcfsCPUSource:
    """Reads ``<procfs>/stat`` once per call and returns every CPU the kernel lists."""

    def __init__(self, procfs: str = "/proc", hz: float | None = None):
        self.procfs = procfs
        self.hz = hz if hz is not None else user_hz()

    def read(self) -> CPUStat:
        return read_stat(self.procfs, self.hz)

    def close(self) -> None:
        pass
