"""The cpu collector: per-CPU times from ``<procfs>/stat`` (psutil elsewhere).

``source.py`` reads (OpenTelemetry-free), ``metrics.py`` holds its rows and their observers,
this module declares the collector.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace

from otel_bare_metal.collectors.cpu.metrics import CPU_MODES, METRICS, CPUObservers
from otel_bare_metal.collectors.cpu.source import HeldCPUSource, ProcfsCPUSource
from otel_bare_metal.registry import CollectorSpec, Paths, option


def cpu_source(procfs: str = "/proc", platform: str = sys.platform) -> ProcfsCPUSource | HeldCPUSource:
    """The platform's CPU source, chosen here the way Go build tags choose files: Linux reads
    procfs, every other system goes through psutil (its counters held the same way)."""
    if platform.startswith("linux"):
        return ProcfsCPUSource(procfs)
    from otel_bare_metal.collectors.cpu.fallback import PsutilCPUSource

    return HeldCPUSource(PsutilCPUSource())


@dataclass(frozen=True)
class CPUOptions:
    guest: bool = option("--collector.cpu.guest", True, "Export guest time (system.cpu.guest.time; classic "
                         "node_cpu_guest_seconds_total), as node_exporter's flag.")


class _WithoutGuest:
    """The CPU source with the guest columns dropped (``--no-collector.cpu.guest``)."""

    def __init__(self, source) -> None:
        self.source = source

    def read(self):
        stat = self.source.read()
        return replace(stat, cpus=[replace(c, guest=None, guest_nice=None) for c in stat.cpus])

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close:
            close()


def _source(paths: Paths, options: CPUOptions):
    source = cpu_source(paths.procfs, platform=paths.platform)
    return source if options.guest else _WithoutGuest(source)


def _check(paths: Paths, options: CPUOptions, enabled: bool) -> None:
    if enabled and paths.platform.startswith("linux") and not os.path.isfile(os.path.join(paths.procfs, "stat")):
        raise ValueError(f"--path.procfs {paths.procfs!r}: no stat file there (is it a procfs?)")


DOCS = "\n".join([
    "`cpu.mode` values come from the `/proc/stat` columns:",
    "",
    "| /proc/stat column | `cpu.mode` |",
    "|---|---|",
    *[f"| {column} | `{mode}` |" for column, mode in CPU_MODES.items()],
    "| guest | `user` on `system.cpu.guest.time` |",
    "| guest_nice | `nice` on `system.cpu.guest.time` |",
    "",
    "Guest time is already inside `user` and `nice`, so it is exported as its own metric and",
    "never added twice; `--no-collector.cpu.guest` leaves it out (node_exporter's flag). Older kernels give fewer columns; only the modes the kernel reports",
    "appear. `system.cpu.logical.count` is `system_cpu_logical_cpus` on /metrics: a name",
    "ending in `_count` is reserved for histograms and promtool rejects it.",
])

COLLECTOR = CollectorSpec(
    name="cpu",
    source=_source,
    options=CPUOptions,
    observers=CPUObservers,
    metrics=METRICS,
    title="CPU (`--collector.cpu`)",
    docs=DOCS,
    check=_check,
)
