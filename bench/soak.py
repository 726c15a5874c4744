"""Soak: thousands of concurrent scrapes and probes for a bounded time; does resident memory keep growing?

The exporter runs as its own process (CPU and filesystem collectors on this machine,
``--hdhomerun.allow-target=127.0.0.0/8:*``); --simulators HDHomeRun simulators run in this
process.  --scrapers client threads scrape ``/metrics`` and --probers threads probe the
simulators in turn, each over its own keep-alive connection, until --seconds have passed (and
each thread at most --max-requests requests).  VmRSS of the exporter is sampled every
--interval seconds.

Reported: the RSS series, requests and errors, and the least-squares slope of RSS over the
second half of the run.  "flat" means the second half's fitted growth is under --flat-mb
(default 1 MB): memory that settles after warm-up is fine, memory that keeps climbing is not.
Loopback only; every loop is bounded in count and time; every process and thread is stopped.

    .venv/bin/python bench/soak.py [--seconds 60] [--scrapers 3] [--probers 1] [--interval 3]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import cpu_seconds, free_port, ours, rss_bytes, server  # noqa: E402

from otel_bare_metal.hdhr.simulator import Simulator  # noqa: E402

MB = 1_000_000


class Client(threading.Thread):
    """Requests ``paths`` in turn over one connection until ``stop`` is set or ``limit`` is reached."""

    def __init__(self, port: int, paths: list[str], stop: threading.Event, limit: int):
        super().__init__(daemon=True)
        self.port, self.paths, self.stop, self.limit = port, paths, stop, limit
        self.ok = self.errors = 0
        self.last_error = ""

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = 0
        while not self.stop.is_set() and i < self.limit:
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                if response.status == 200 and body:
                    self.ok += 1
                else:
                    self.errors += 1
                    self.last_error = f"HTTP {response.status} on {path}"
            except (OSError, http.client.HTTPException) as e:
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e} on {path}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.close()


def slope(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS (bytes) against time (s)."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return sum((t - mt) * (r - mr) for t, r in samples) / var if var else 0.0


def soak(seconds: float = 60.0, scrapers: int = 3, probers: int = 1, simulators: int = 2,
         interval: float = 3.0, max_requests: int = 200_000, flat_mb: float = 1.0) -> dict:
    with ExitStack() as stack:
        sims = [stack.enter_context(Simulator("127.0.0.1", 0, tuners=4)) for _ in range(simulators)]
        port = free_port()
        proc = stack.enter_context(server(ours(port, "--hdhomerun.allow-target=127.0.0.0/8:*"), port, ready_path="/healthz"))
        stop = threading.Event()
        probe_paths = [f"/probe?target={s.address_text}" for s in sims] or ["/healthz"]
        clients = [Client(port, ["/metrics"], stop, max_requests) for _ in range(scrapers)]
        clients += [Client(port, probe_paths, stop, max_requests) for _ in range(probers)]
        samples = [(0.0, rss_bytes(proc.pid))]
        cpu0 = cpu_seconds(proc.pid)
        start = time.monotonic()
        for c in clients:
            c.start()
        try:
            while (now := time.monotonic() - start) < seconds and any(c.is_alive() for c in clients):
                time.sleep(min(interval, max(0.0, seconds - now)))
                samples.append((time.monotonic() - start, rss_bytes(proc.pid)))
        finally:
            stop.set()
            for c in clients:
                c.join(35)
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(proc.pid) - cpu0
        samples.append((elapsed, rss_bytes(proc.pid)))
    second_half = [s for s in samples if s[0] >= elapsed / 2]
    half_slope = slope(second_half)
    half_growth = half_slope * (elapsed / 2)
    scrapes = sum(c.ok for c in clients[:scrapers])
    probes = sum(c.ok for c in clients[scrapers:])
    return {
        "seconds": elapsed,
        "samples": samples,
        "scrapes": scrapes,
        "probes": probes,
        "errors": sum(c.errors for c in clients),
        "last_error": next((c.last_error for c in clients if c.last_error), ""),
        "cpu_s": cpu,
        "threads": (scrapers, probers, simulators),
        "slope_mb_per_min": half_slope * 60 / MB,
        "second_half_growth": half_growth,
        "total_growth": samples[-1][1] - samples[0][1],
        "peak": max(r for _, r in samples),
        "flat": half_growth < flat_mb * MB,
        "flat_mb": flat_mb,
    }


def table(r: dict) -> str:
    scrapers, probers, sims = r["threads"]
    series = ", ".join(f"{t:.0f}s {rss / MB:.1f}" for t, rss in r["samples"])
    lines = [
        "| duration | scrapes | probes | errors | exporter CPU s | RSS start → end (MB) | peak (MB) | slope, second half | verdict |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---|",
        f"| {r['seconds']:.0f} s | {r['scrapes']} | {r['probes']} | {r['errors']} | {r['cpu_s']:.1f} "
        f"| {r['samples'][0][1] / MB:.1f} → {r['samples'][-1][1] / MB:.1f} | {r['peak'] / MB:.1f} "
        f"| {r['slope_mb_per_min']:+.3f} MB/min | {'flat' if r['flat'] else '**GROWING**'} |",
        "",
        f"{scrapers} scraper thread(s), {probers} prober thread(s) over {sims} simulator(s). "
        f"RSS series (s MB): {series}.",
        f"Fitted growth over the second half: {r['second_half_growth'] / MB:+.2f} MB (flat means < {r['flat_mb']:.1f} MB).",
    ]
    if r["errors"]:
        lines.append(f"Last error: {r['last_error']}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--scrapers", type=int, default=3)
    p.add_argument("--probers", type=int, default=1)
    p.add_argument("--simulators", type=int, default=2)
    p.add_argument("--interval", type=float, default=3.0, help="seconds between RSS samples")
    p.add_argument("--max-requests", type=int, default=200_000, help="per client thread")
    p.add_argument("--flat-mb", type=float, default=1.0)
    args = p.parse_args()
    r = soak(args.seconds, args.scrapers, args.probers, args.simulators, args.interval, args.max_requests, args.flat_mb)
    print(table(r))
    return 0 if r["flat"] and not r["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
