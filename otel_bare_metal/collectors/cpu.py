"""The cpu collector: per-CPU times from ``<procfs>/stat`` (psutil elsewhere)."""

from __future__ import annotations

import os

from otel_bare_metal.registry import CollectorSpec, Paths
from otel_bare_metal.sources import cpu_source
from otel_bare_metal.telemetry.definitions import CPU_MODES, of_collector
from otel_bare_metal.telemetry.host import CPUObservers


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
    metrics=of_collector("cpu"),
    title="CPU (`--collector.cpu`)",
    docs=DOCS,
    check=_check,
)
