"""Scrapes that never wait on what is broken: three figures, each beside its yardstick.

1. **Dead devices in steady state.**  The exporter (its own process, HDHomeRun collector
   only, ``--hdhomerun.timeout 2.5``) with GOOD simulated devices, once with and once without
   3 dead ones (they accept connections and never answer).  Median page time over scrapes
   2..N (scrape 1 is the only one allowed to wait for a dead device); ratio with/without.
2. **Slow-link come-up.**  40 devices whose every reply is delayed 100 ms, plus 3 dead, with
   ``--hdhomerun.timeout 1``: per scrape (1 s apart), how many of the 40 are up, how many dead
   ones are (must be 0), and the page time against the timeout.
3. **A hung collector under the scrape's deadline.**  In process: an ``App`` on this
   host's ``/proc`` whose filesystem collector's mount table read blocks (an injected blocking
   function, a stand-in for a FIFO or a dead NFS server), scraped with
   ``X-Prometheus-Scrape-Timeout-Seconds: 2`` (budget 1.5 s with the default offset); the
   yardstick is the same exporter with nothing hung.

Simulated devices run in child processes (bench/simulators.py).  Loopback only; every loop
is bounded.

    .venv/bin/python bench/scrape_deadline.py [--good 10] [--scrapes 6] [--skip dead,slow,hang]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import free_port, ours, server  # noqa: E402
from hdhomerun_fanout import SimulatorFleet  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def scrape(port: int, headers: dict | None = None) -> tuple[float, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    conn.request("GET", "/metrics", headers=headers or {})
    response = conn.getresponse()
    body = response.read().decode()
    elapsed = time.perf_counter() - start
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}")
    return elapsed, body


def up_by_device(body: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == "hdhomerun_up":
                out[s.labels["hdhomerun_device"]] = s.value
    return out


def fleet_scrapes(good: int, dead: int, latency: float, timeout: float, scrapes: int, gap: float) -> list[dict]:
    sims = SimulatorFleet(good + dead, dead, latency)
    dead_addresses = set(sims.dead_addresses)
    try:
        port = free_port()
        args = ["--no-collector.cpu", "--no-collector.filesystem", f"--hdhomerun.timeout={timeout}",
                *[f"--hdhomerun.device={a}" for a in sims.addresses]]
        rows = []
        with server(ours(port, *args), port, ready_path="/healthz"):
            for n in range(1, scrapes + 1):
                elapsed, body = scrape(port)
                up = up_by_device(body)
                rows.append({
                    "scrape": n, "seconds": elapsed,
                    "good_up": sum(v for a, v in up.items() if a not in dead_addresses),
                    "dead_up": sum(v for a, v in up.items() if a in dead_addresses),
                    "devices": len(up),
                })
                time.sleep(gap)
        return rows
    finally:
        sims.close()


def dead_devices(good: int, scrapes: int) -> dict:
    with_dead = fleet_scrapes(good, 3, 0.05, 2.5, scrapes, 0.2)
    without = fleet_scrapes(good, 0, 0.05, 2.5, scrapes, 0.2)
    steady = statistics.median(r["seconds"] for r in with_dead[1:])
    yard = statistics.median(r["seconds"] for r in without[1:])
    return {"first_with_dead": with_dead[0]["seconds"], "steady_with_dead": steady, "steady_without": yard,
            "ratio": steady / yard, "all_correct": all(r["good_up"] == good and r["dead_up"] == 0 for r in with_dead)}


def slow_link(scrapes: int) -> list[dict]:
    return fleet_scrapes(40, 3, 0.1, 1.0, scrapes, 1.0)


def hang(scrapes: int) -> dict:
    from otel_bare_metal.app import App
    from otel_bare_metal.config import Config
    from otel_bare_metal.collectors.filesystem.source import FilesystemSource, StatfsWatchdog
    from otel_bare_metal.procfs import read_mountinfo
    from otel_bare_metal.telemetry import SourceWorker
    from otel_bare_metal.collectors.cpu.source import ProcfsCPUSource
    from otel_bare_metal.telemetry.resource import build_resource

    release = threading.Event()

    def blocked_mounts(procfs):
        release.wait(120)
        return read_mountinfo(procfs)

    results = {}
    try:
        for name, read_mounts in (("yardstick", read_mountinfo), ("hung", blocked_mounts)):
            collectors = [SourceWorker("cpu", ProcfsCPUSource()),
                          SourceWorker("filesystem", FilesystemSource(watchdog=StatfsWatchdog(timeout=5.0), read_mounts=read_mounts))]
            exporter = App(Config(listen_address="127.0.0.1:0"), resource=build_resource({}), collectors=collectors).start()
            try:
                times = [scrape(exporter.server.port, {"X-Prometheus-Scrape-Timeout-Seconds": "2"})[0] for _ in range(scrapes)]
            finally:
                release.set() if name == "hung" else None
                exporter.close()
            results[name] = times
    finally:
        release.set()
    return results


def measure(good: int = 10, scrapes: int = 6, skip: frozenset[str] = frozenset()) -> dict:
    out: dict = {}
    if "dead" not in skip:
        out["dead"] = dead_devices(good, scrapes)
        out["good"] = good
    if "slow" not in skip:
        out["slow"] = slow_link(scrapes)
    if "hang" not in skip:
        out["hang"] = hang(scrapes)
    return out


def table(results: dict) -> str:
    lines: list[str] = []
    d = results.get("dead")
    if d:
        lines += [f"**{results['good']} devices (50 ms replies) with and without 3 dead**, `--hdhomerun.timeout 2.5`:", "",
                  "| first scrape with dead (s) | steady state with dead (s) | steady state without (s) | ratio | every scrape correct |",
                  "|---|---|---|---|---|",
                  f"| {d['first_with_dead']:.3f} | {d['steady_with_dead']:.3f} | {d['steady_without']:.3f} | {d['ratio']:.2f} | {d['all_correct']} |",
                  ""]
    rows = results.get("slow")
    if rows:
        lines += ["**Slow link**: 40 devices with 100 ms per reply + 3 dead, `--hdhomerun.timeout 1`, scrapes 1 s apart:", "",
                  "| scrape | page time (s) | × timeout | of 40 up | dead reported up |", "|---|---|---|---|---|"]
        lines += [f"| {r['scrape']} | {r['seconds']:.3f} | {r['seconds'] / 1.0:.2f} | {r['good_up']:.0f} | {r['dead_up']:.0f} |" for r in rows]
        lines.append("")
    h = results.get("hang")
    if h:
        lines += ["**One collector hangs**, `X-Prometheus-Scrape-Timeout-Seconds: 2` (budget 1.5 s), scrapes back to back:", "",
                  "| | response time per scrape (s) | max (s) | max ÷ header |", "|---|---|---|---|"]
        for name in ("yardstick", "hung"):
            t = h[name]
            lines.append(f"| {name} | {' '.join(f'{x:.3f}' for x in t)} | {max(t):.3f} | {max(t) / 2:.2f} |")
        lines += ["", "The hung read is joined, never restarted; once it has outlived the filesystem collector's own "
                  "5 s bound, scrapes stop waiting for it at all."]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--good", type=int, default=10)
    p.add_argument("--scrapes", type=int, default=6)
    p.add_argument("--skip", default="", help="comma-separated: dead, slow, hang")
    args = p.parse_args()
    print(table(measure(args.good, args.scrapes, frozenset(args.skip.split(",")))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
