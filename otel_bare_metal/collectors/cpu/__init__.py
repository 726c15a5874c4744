"""The cpu collector: per-CPU times from ``<procfs>/stat`` (psutil elsewhere).

``source.py`` reads (OpenTelemetry-free), ``metrics.py`` holds its rows and their observers,
this module declares the collector.
"""

from __future__ import annotations

import os
import sys

from otel_bare_metal.collectors.cpu.metrics import CPU_MODES, METRICS, CPUObservers
from otel_bare_metal.collectors.cpu.source import HeldCPUSource, ProcfsCPUSource
from otel_bare_metal.registry import CollectorSpec, Paths


def cpu_source(procfs: str = "/proc", platform: str = sys.platform) -> ProcfsCPUSource | HeldCPUSource:
    """The platform's CPU source, chosen here the way Go build tags choose files: Linux reads
    procfs, every other system goes through psutil (its counters held the same way)."""
    if platform.startswith("linux"):
        return ProcfsCPUSource(procfs)
    from otel_bare_metal.collectors.cpu.fallback import PsutilCPUSource

    return HeldCPUSource(PsutilCPUSource())


def _check(paths: Paths, options: dict, enabled: bool) -> None:
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
    "never added twice. Older kernels give fewer columns; only the modes the kernel reports",
    "appear. `system.cpu.logical.count` is `system_cpu_logical_cpus` on /metrics: a name",
    "ending in `_count` is reserved for histograms and promtool rejects it.",
])

COLLECTOR = CollectorSpec(
    name="cpu",
    source=lambda paths, options: cpu_source(paths.procfs, platform=paths.platform),
    observers=CPUObservers,
    metrics=METRICS,
    title="CPU (`--collector.cpu`)",
    docs=DOCS,
    check=_check,
)
