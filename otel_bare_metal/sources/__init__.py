"""Sources read the machine and return plain records (``records.py``).  They never import
opentelemetry (a test keeps it so).

The platform is chosen here, in one place, the way Go build tags choose files: Linux reads
procfs and calls statfs directly; every other system goes through psutil.
"""

from __future__ import annotations

import sys

from otel_bare_metal.sources.filesystem import FilesystemSource, MountFilter, StatfsWatchdog
from otel_bare_metal.sources.records import CPUStat, FilesystemStat


def cpu_source(procfs: str = "/proc", platform: str = sys.platform):
    if platform.startswith("linux"):
        from otel_bare_metal.sources.cpu import ProcfsCPUSource

        return ProcfsCPUSource(procfs)
    from otel_bare_metal.sources.cpu import HeldCPUSource
    from otel_bare_metal.sources.fallback import PsutilCPUSource

    return HeldCPUSource(PsutilCPUSource())  # counters never go backwards there either


def filesystem_source(
    procfs: str = "/proc",
    rootfs: str = "/",
    mount_filter: MountFilter | None = None,
    timeout: float = 5.0,
    platform: str = sys.platform,
):
    if platform.startswith("linux"):
        return FilesystemSource(procfs, rootfs, mount_filter, StatfsWatchdog(timeout=timeout))
    from otel_bare_metal.sources.fallback import PsutilFilesystemSource

    return PsutilFilesystemSource(mount_filter, timeout)


__all__ = ["cpu_source", "filesystem_source", "CPUStat", "FilesystemStat", "MountFilter"]
