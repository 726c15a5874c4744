"""Where one small scrape's time goes, end to end, on this machine.

The exporter's defaults on this host (the CPU and filesystem collectors), in this process:

* **sources**: every source's ``read()`` called directly, one after another (the collectors'
  and the exporter's own process metrics');
* **collection**: ``Collection.collect`` (the sources read under one deadline, however the
  collection runs them, and the results snapshotted); minus *sources*, the machinery's own cost;
* **SDK collect**: the Prometheus reader's ``collect`` (the collection above, our observers
  and the SDK's own per-point work); minus *collection*, the observers and the SDK;
* **floor**: the SDK alone making the same points (``bench/floor.py``: a bare MeterProvider with
  the same instruments, every observation precomputed); *SDK collect* minus *collection* minus
  *floor* is what our observers and instruments add, and what the reads cost more inside the
  SDK's collection than alone (split by **observe**: the reader's collect with the sources not
  read, the last results kept);
* **encode**: ``TextEncoder.encode`` of one collection's MetricsData;
* **render**: ``PrometheusPage.render`` (lock, deadline, collect, encode); minus *SDK collect*
  and *encode*, the page's own bookkeeping;
* **scrape over HTTP**: the server's CPU time per ``/metrics`` over one keep-alive connection
  (accept, head, route, render, send), the client in a child process; minus *render*, the HTTP
  server's share.

Medians of CPU time (``time.process_time``, every thread, for the in-process parts, the process's
``/proc/self/stat`` for HTTP) and of wall time, alternating the parts round after round; a
part found by difference is the median over rounds of the difference within each round.

    .venv/bin/python bench/profile_scrape.py [-n 2000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, TICK, free_port  # noqa: E402

sys.path.insert(0, str(ROOT))

CLIENT = r"""
import http.client, sys, time
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
n, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
for i in range(n):
    if time.monotonic() > deadline:
        break
    conn.request("GET", "/metrics")
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
print(i + 1)
"""


def _process_cpu() -> float:
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _timed(fn, n: int) -> tuple[float, float]:
    """Median process CPU (every thread) and wall microseconds of ``fn()`` over ``n`` calls (after one warm-up)."""
    fn()
    cpu, wall = [], []
    for _ in range(n):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        w1, c1 = time.perf_counter(), time.process_time()
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
    return statistics.median(cpu) * 1e6, statistics.median(wall) * 1e6


def measure(n: int = 2000, http_seconds: float = 20.0) -> dict:
    from otel_bare_metal.app import App, Config
    from otel_bare_metal.deadline import scrape_deadline

    config = Config(listen_address=f"127.0.0.1:{free_port()}", collectors={"cpu": True, "filesystem": True})
    app = App(config)
    page = app.page
    sources = [w.source for w in app.collection.workers]  # the collectors' and the exporter's own process source

    def read_sources():
        for s in sources:
            s.read()

    def collect():
        app.collection.collect(scrape_deadline(None))

    def sdk_collect():
        page.reader.capture = True
        page.reader.collect(timeout_millis=10_000)
        page.reader.capture = False

    page.reader.capture = True
    page.reader.collect(timeout_millis=10_000)
    data, page.reader.captured = page.reader.captured, None
    page.reader.capture = False
    encoder = page._fast
    from floor import sdk_floor  # the SDK alone, for this scrape's points
    floor_reader, floor_provider, _ = sdk_floor(data)

    def floor():
        floor_reader.get_metrics_data()

    def observe():  # the reader's collect with the sources not read again: the last collection's results
        app.collection.collect = lambda *args, **kwargs: None
        try:
            sdk_collect()
        finally:
            del app.collection.collect

    def encode():
        encoder.encode(data)

    def render():
        page.render(None, scrape_deadline(None))

    parts = {"sources": read_sources, "collection": collect, "sdk": sdk_collect, "observe": observe, "floor": floor, "encode": encode, "render": render}
    rounds = 20
    per_round: list[dict[str, tuple[float, float]]] = []
    gc.collect()
    for _ in range(rounds):
        per_round.append({name: _timed(fn, max(1, n // rounds)) for name, fn in parts.items()})

    def derived(row: dict) -> dict:
        """Each part alone, from one round's medians: the differences are taken within a round."""
        def less(a, *bs):
            return tuple(row[a][i] - sum(row[b][i] for b in bs) for i in (0, 1))
        return {"sources": row["sources"], "machinery": less("collection", "sources"), "sdk_only": less("sdk", "collection"),
                "floor": row["floor"], "observers": less("observe", "floor"), "inside": less("sdk", "observe", "collection"),
                "encode": row["encode"], "bookkeeping": less("render", "sdk", "encode"), "render": row["render"]}

    rows = [derived(r) for r in per_round]
    result = {k: (statistics.median(r[k][0] for r in rows), statistics.median(r[k][1] for r in rows)) for k in rows[0]}
    result["points"] = sum(len(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)
    result["bytes"] = len(encoder.encode(data))

    app.start()
    try:
        port = app.server.addresses[0].rsplit(":", 1)[1]
        subprocess.run([sys.executable, "-c", CLIENT, port, "200", "5"], check=True, capture_output=True)  # warm-up
        cpu0, w0 = _process_cpu(), time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CLIENT, port, str(n), str(http_seconds)], check=True,
                             capture_output=True, text=True)
        elapsed, cpu = time.perf_counter() - w0, _process_cpu() - cpu0
        scrapes = int(out.stdout)
        result["http"] = (cpu / scrapes * 1e6, elapsed / scrapes * 1e6)
        result["http_scrapes"] = scrapes
    finally:
        app.close()
        floor_provider.shutdown()
    return result


def table(r: dict) -> str:
    http, render = r["http"], r["render"]
    rows = [
        ("sources' reads (cpu, filesystem, the process's own)", r["sources"]),
        ("collection machinery (hand-off, deadline, snapshot)", r["machinery"]),
        ("the SDK's own collection of these points (bench/floor.py: same instruments, points precomputed)", r["floor"]),
        ("our observers and instruments (the Observations; the SDK's collection without reading, less its floor)", r["observers"]),
        ("reading inside the SDK's collection rather than alone (caches: the same reads cost more between the SDK's work)",
         r["inside"]),
        ("text encoding", r["encode"]),
        ("page bookkeeping (lock, deadline, scrape registration)", r["bookkeeping"]),
        ("HTTP: accept, head, route, send (server side)", (http[0] - render[0], http[1] - render[1])),
    ]
    total = http[0]
    lines = [f"One small scrape: {r['points']} points, {r['bytes']} bytes (CPU + filesystem collectors on this host); "
             f"{r['http_scrapes']} scrapes over HTTP.", "",
             "| part | CPU µs | share of the scrape's CPU | wall µs |", "|---|---:|---:|---:|"]
    for name, (cpu, wall) in rows:
        lines.append(f"| {name} | {cpu:.0f} | {100 * cpu / total:.0f} % | {wall:.0f} |")
    lines.append(f"| **whole scrape, server CPU** (wall: round trip incl. the client) | **{http[0]:.0f}** | 100 % | {http[1]:.0f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=2000)
    args = p.parse_args()
    print(table(measure(args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
