"""The exporter's own process: CPU time, memory, file descriptors, start time, build.

OpenTelemetry-free, like every source.  On Linux one read is ``/proc/self/stat`` (one small
file), the names in ``/proc/self/fd`` and ``getrlimit``: what the Prometheus client libraries
read for their ``process_*`` metrics.  Elsewhere psutil gives the same figures.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from otel_bare_metal import __version__
from otel_bare_metal.procfs import read_file


@dataclass(frozen=True)
class Build:
    """What was built and what runs it (``otel_bare_metal_build_info``)."""

    version: str
    revision: str  # the commit, when the installer recorded one; else "unknown"
    runtime_name: str  # "cpython", "pypy": sys.implementation.name
    runtime_version: str  # "3.11.7"


@dataclass(frozen=True)
class ProcessStat:
    cpu_user: float  # seconds
    cpu_system: float  # seconds
    resident_bytes: int
    virtual_bytes: int
    start_time: float  # seconds since the epoch
    uptime: float  # seconds
    open_fds: int | None  # None where the platform has no file descriptor table (Windows)
    max_fds: float | None  # the soft RLIMIT_NOFILE; None where there is none
    build: Build
    errors: list[str] = field(default_factory=list)


def _revision() -> str:
    """The commit pip recorded for an install from a VCS URL (PEP 610 direct_url.json)."""
    try:
        from importlib import metadata

        text = metadata.distribution("otel-bare-metal").read_text("direct_url.json") or "{}"
        commit = json.loads(text).get("vcs_info", {}).get("commit_id")
    except Exception:  # not installed as a distribution (a checkout on PYTHONPATH), or no record
        commit = None
    return str(commit) if commit else "unknown"


def build() -> Build:
    return Build(__version__, _revision(), sys.implementation.name, platform.python_version())


def _max_fds() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return float("inf") if soft == resource.RLIM_INFINITY else float(soft)


class ProcfsProcessSource:
    """Linux: ``<procfs>/self/stat`` (fields 14, 15, 22, 23, 24 of proc(5)), ``<procfs>/self/fd``,
    and the boot time from ``<procfs>/stat``, read once (the start time never changes).

    ``nonblocking``: these are kernel pseudo-files, generated in memory, so a collection may
    read them on its own thread (``telemetry.collection``); they are opened as the CPU source
    opens ``stat`` (``procfs.read_file``: non-blocking, regular files only), so a FIFO planted
    in a ``--path.procfs`` tree is refused rather than waited on."""

    nonblocking = True

    def __init__(self, procfs: str = "/proc", clock: Callable[[], float] = time.time):
        self.procfs = procfs
        self._clock = clock
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._build = build()
        self._start_time = self._boot_time() + self._stat()[19] / self._ticks

    def _boot_time(self) -> float:
        for line in read_file(os.path.join(self.procfs, "stat")).splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
        raise ValueError(f"{self.procfs}/stat has no btime line")

    def _stat(self) -> list[int]:
        """The fields of ``self/stat`` after the command name, as integers from field 3 on
        (the name is in parentheses and may itself hold spaces and parentheses)."""
        text = read_file(os.path.join(self.procfs, "self", "stat"))
        rest = text[text.rindex(")") + 2:].split()
        return [0] + [int(v) for v in rest[1:]]  # field 3 (the state letter) is not a number

    def read(self) -> ProcessStat:
        fields = self._stat()  # fields[n - 3] is proc(5)'s field n
        open_fds = len(os.listdir(os.path.join(self.procfs, "self", "fd")))
        return ProcessStat(
            cpu_user=fields[11] / self._ticks,
            cpu_system=fields[12] / self._ticks,
            resident_bytes=fields[21] * self._page,
            virtual_bytes=fields[20],
            start_time=self._start_time,
            uptime=max(0.0, self._clock() - self._start_time),
            open_fds=open_fds,
            max_fds=_max_fds(),
            build=self._build,
        )


class PsutilProcessSource:
    """Every other system, through psutil (which the CPU and filesystem fallbacks use too)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        import psutil

        self._process = psutil.Process()
        self._clock = clock
        self._build = build()
        self._start_time = self._process.create_time()

    def read(self) -> ProcessStat:
        p = self._process
        with p.oneshot():
            cpu = p.cpu_times()
            memory = p.memory_info()
            open_fds = p.num_fds() if hasattr(p, "num_fds") else None
        return ProcessStat(
            cpu_user=cpu.user,
            cpu_system=cpu.system,
            resident_bytes=memory.rss,
            virtual_bytes=memory.vms,
            start_time=self._start_time,
            uptime=max(0.0, self._clock() - self._start_time),
            open_fds=open_fds,
            max_fds=_max_fds(),
            build=self._build,
        )


def process_source(platform_name: str = sys.platform, procfs: str = "/proc"):
    """The exporter's own process, read the platform's way.  ``procfs`` is this process's
    procfs (always ``/proc`` in use: not ``--path.procfs``, which is the host's)."""
    if platform_name.startswith("linux"):
        return ProcfsProcessSource(procfs)
    return PsutilProcessSource()
