"""The SDK's own floor: what the OpenTelemetry SDK alone costs for the points the exporter makes.

On one synthetic tree (bench/scale.py's ``make_tree``), in this process, two MeterProviders
built by the same factory (``telemetry.provider.meter_provider``: no exemplars) with the same
reader (``InMemoryMetricReader``, the exporter's cardinality limit):

* **exporter**: the real collectors of the cpu and filesystem collectors from the registry
  (``app.build_collectors``) instrumented by ``telemetry.instrument`` — sources read, records
  mapped, the collection machinery, self-monitoring — exactly what a scrape or an OTLP export
  runs before encoding;
* **floor**: a bare MeterProvider with the same instruments (name, kind, unit), whose
  callbacks return Observations precomputed from one exporter collection: the same number of
  points, instruments and attribute sets, and no work of ours at all.

Collections alternate between the two; the medians of the process CPU time each collection
takes (worker threads included; steadier than wall time on a shared machine) are reported, and
their ratio, with the wall-time medians beside them.  Whatever the
exporter costs beyond the floor is our design (sources, mapping, registry, plugins); the floor
itself is the SDK's.

    .venv/bin/python bench/floor.py [--cpus 256] [--mounts 200] [-n 15]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT))


def sdk_floor(data, resource=None):
    """A bare MeterProvider (our provider factory: no exemplars) whose instruments return
    ``data``'s points, precomputed: (its reader, the provider, the shape: instruments, points,
    distinct attribute sets).  Collecting from the reader is the SDK's own work for those points."""
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Sum
    from opentelemetry.sdk.resources import Resource

    from otel_bare_metal.exposition.prometheus import CARDINALITY_LIMITS
    from otel_bare_metal.telemetry.provider import meter_provider

    floor = InMemoryMetricReader(cardinality_limits=CARDINALITY_LIMITS)
    floor_provider = meter_provider(resource or Resource.create({"service.name": "bench"}), [floor])
    meter = floor_provider.get_meter("floor")
    shape: dict = {"instruments": 0, "points": 0, "attribute_sets": set()}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                observations = [Observation(p.value, dict(p.attributes)) for p in m.data.data_points]
                shape["instruments"] += 1
                shape["points"] += len(observations)
                shape["attribute_sets"].update(frozenset(p.attributes.items()) for p in m.data.data_points)
                if isinstance(m.data, Sum):
                    create = meter.create_observable_counter if m.data.is_monotonic else meter.create_observable_up_down_counter
                elif isinstance(m.data, Gauge):
                    create = meter.create_observable_gauge
                else:
                    raise TypeError(f"{m.name}: {type(m.data).__name__}")
                create(m.name, callbacks=[lambda options, obs=observations: obs], unit=m.unit, description=m.description)
    floor.get_metrics_data()
    shape["attribute_sets"] = len(shape["attribute_sets"])
    return floor, floor_provider, shape


def _providers(procfs: str, rootfs: str):
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

    from otel_bare_metal.app import build_collectors
    from otel_bare_metal.config import Config
    from otel_bare_metal.exposition.prometheus import CARDINALITY_LIMITS
    from otel_bare_metal.telemetry import instrument
    from otel_bare_metal.telemetry.provider import meter_provider

    resource = Resource.create({"service.name": "bench"})
    config = Config(procfs=procfs, rootfs=rootfs, collectors={"cpu": True, "filesystem": True})
    collectors = build_collectors(config)
    ours = InMemoryMetricReader(cardinality_limits=CARDINALITY_LIMITS)
    ours_provider = meter_provider(resource, [ours])
    instrument(ours_provider.get_meter("otel_bare_metal"), collectors)
    ours.get_metrics_data()  # warm: attribute caches, the statfs workers
    data = ours.get_metrics_data()

    floor, floor_provider, shape = sdk_floor(data, resource)

    def close() -> None:
        ours_provider.shutdown()
        floor_provider.shutdown()
        for c in collectors:
            c.close()

    return ours, floor, shape, close


def measure(procfs: str, rootfs: str, n: int = 15) -> dict:
    ours, floor, shape, close = _providers(procfs, rootfs)
    # As `otel-bare-metal` does once it has started (cli.serve): what exists now lives as long as
    # the process, so the garbage collector stops walking it.  Without it, whichever side
    # happens to trigger a full collection pays for walking the whole heap (tens of ms).
    gc.collect()
    gc.freeze()
    wall = {"ours": [], "floor": []}
    cpu = {"ours": [], "floor": []}
    try:
        for _ in range(n):
            for name, reader in (("ours", ours), ("floor", floor)):
                start, cpu0 = time.perf_counter(), time.process_time()
                reader.get_metrics_data()
                cpu[name].append(time.process_time() - cpu0)
                wall[name].append(time.perf_counter() - start)
    finally:
        close()

    def ms(xs: list[float]) -> float:
        return 1000 * statistics.median(xs)

    collect_ms, floor_ms = ms(cpu["ours"]), ms(cpu["floor"])
    return {"collect_ms": collect_ms, "floor_ms": floor_ms, "floor_ratio": collect_ms / floor_ms,
            "min_ratio": min(cpu["ours"]) / min(cpu["floor"]),
            "collect_wall_ms": ms(wall["ours"]), "floor_wall_ms": ms(wall["floor"]), **shape}


def main() -> int:
    from scale import make_tree

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpus", type=int, default=256)
    p.add_argument("--mounts", type=int, default=200)
    p.add_argument("-n", type=int, default=15, help="collections of each, alternating")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        procfs, rootfs = make_tree(Path(tmp), args.cpus, args.mounts)
        r = measure(str(procfs), str(rootfs), args.n)
    print(f"{args.cpus} CPUs × {args.mounts} mounts: {r['instruments']} instruments, {r['points']} points, "
          f"{r['attribute_sets']} attribute sets")
    print(f"CPU per collection: exporter {r['collect_ms']:.1f} ms, SDK floor {r['floor_ms']:.1f} ms: "
          f"{r['floor_ratio']:.2f} × the floor (fastest of each: {r['min_ratio']:.2f} ×; "
          f"wall: {r['collect_wall_ms']:.1f} vs {r['floor_wall_ms']:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
