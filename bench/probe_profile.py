"""Where one classic /probe's CPU goes, in process: cProfile over N probes of one simulated
4-tuner device (child process, bench/simulators.py), through the /probe route the hdhomerun
collector hands the app (allowlist, device read, SDK collection, encoding); HTTP is left out.

Prints CPU ms per probe in process (time.process_time), split into the device read, the SDK's
collection and our encoding (each method timed, no profiler), then a CPU profile's top entries by
own time and by cumulative time (the profiler's per-call cost inflates call-heavy code: read its
shares, not its totals).  Loopback only, bounded in count.

    .venv/bin/python bench/probe_profile.py [-n 200] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hdhomerun_fanout import SimulatorFleet  # noqa: E402


def probe_route(naming: str = "classic"):
    """The app's /probe handler, built as the command line builds it (no HTTP server started)."""
    from otel_bare_metal.app import App
    from otel_bare_metal.config import load
    from otel_bare_metal.registry import registry

    reg = registry()
    config = load([f"--metrics.naming={naming}", "--hdhomerun.allow-target=127.0.0.0/8:*",
                   "--no-collector.cpu", "--no-collector.filesystem"], {}, reg)
    app = App(config, registry=reg)
    return app, app.collector_routes["/probe"].handler


PARTS = (  # (label, module, class, method): where a probe's CPU goes, timed without the profiler
    ("device read (4 tuner debugs over TCP, parse)", "otel_bare_metal.collectors.hdhomerun.fleet", "Device", "read"),
    ("SDK collection (callbacks, our observers, aggregation)", "otel_bare_metal.exposition.prometheus", "_RenamingReader", "collect"),
    ("text encoding (our TextEncoder)", "otel_bare_metal.exposition.prometheus", "TextEncoder", "encode"),
)


def timed_parts() -> tuple[dict[str, float], callable]:
    """Wrap each part's method to add its CPU time (time.process_time) to a total; returns the
    totals and an undo."""
    import importlib

    totals = {label: 0.0 for label, *_ in PARTS}
    undo = []
    for label, module, cls, method in PARTS:
        owner = getattr(importlib.import_module(module), cls)
        original = getattr(owner, method)

        def wrapper(*args, _original=original, _label=label, **kwargs):
            start = time.process_time()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_label] += time.process_time() - start

        setattr(owner, method, wrapper)
        undo.append((owner, method, original))

    def restore() -> None:
        for owner, method, original in undo:
            setattr(owner, method, original)

    return totals, restore


def run(n: int, top: int) -> str:
    fleet = SimulatorFleet(1, 0, 0.0)
    app, handler = probe_route()
    try:
        query = {"target": [fleet.addresses[0]]}

        def probes(count: int) -> float:
            start = time.process_time()
            for _ in range(count):
                status, body, _ = handler(query, None, time.monotonic() + 10)
                if status != 200 or b"hdhomerun_tuner_info" not in body:
                    raise RuntimeError(f"probe failed: {status} {body[:200]!r}")
            return (time.process_time() - start) * 1000 / count

        probes(5)  # the device's facts learned, first-probe work done
        plain = probes(n)
        totals, restore = timed_parts()
        try:
            split = probes(n)
        finally:
            restore()
        profiler = cProfile.Profile(time.process_time)  # CPU, not wall time: a busy machine preempts
        profiler.enable()
        profiled = probes(n)
        profiler.disable()
    finally:
        for route in app.collector_routes.values():
            if route.close is not None:
                route.close()
        app.provider.shutdown()
        fleet.close()
    out = io.StringIO()
    out.write(f"{n} probes in process: {plain:.3f} CPU ms per probe ({profiled:.3f} under cProfile)\n\n")
    out.write("| part | CPU ms per probe | share |\n|---|---:|---:|\n")
    for label, total in totals.items():
        out.write(f"| {label} | {total * 1000 / n:.3f} | {total * 1000 / n / split:.0%} |\n")
    rest = split - sum(totals.values()) * 1000 / n
    out.write(f"| the rest (allowlist, device cache, the target's reader, locks) | {rest:.3f} | {rest / split:.0%} |\n")
    out.write(f"| whole probe, no HTTP | {split:.3f} | 100% |\n\n")
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=200)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    print(run(args.n, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
