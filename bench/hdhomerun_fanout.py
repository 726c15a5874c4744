"""HDHomeRun fan-out: scrape time of /metrics against the number of configured devices.

Simulated devices (4 tuners, every reply delayed by --latency) run in a few child processes
(bench/simulators.py), as real tuners are separate hardware; the exporter runs as its own
process with only the HDHomeRun collector.  Each row is the median of
--scrapes scrapes after one warm-up scrape (which learns the devices' facts).  "dead" devices
accept connections and never answer: the warm-up scrape waits for them (their first collection),
later scrapes report them down at once while they are retried in the background.  Loopback only, bounded.

    .venv/bin/python bench/hdhomerun_fanout.py [--counts 1,10,40,100] [--dead 3] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import free_port, ours, scrape_for, server  # noqa: E402



SIM_PROCESSES = 4


class SimulatorFleet:
    """Simulated devices spread over a few child processes (bench/simulators.py)."""

    def __init__(self, count: int, dead: int, latency: float):
        self.procs = []
        self.addresses: list[str] = []
        self.dead_addresses: list[str] = []
        per = [count // SIM_PROCESSES + (1 if i < count % SIM_PROCESSES else 0) for i in range(SIM_PROCESSES)]
        for n in (n for n in per if n):
            d = min(dead, n)
            dead -= d
            p = subprocess.Popen([sys.executable, str(HERE / "simulators.py"), str(n), str(latency), str(d)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            addresses = p.stdout.readline().split()
            self.addresses += addresses
            self.dead_addresses += addresses[:d]  # simulators.py makes the first DEAD of each child dead
            self.procs.append(p)

    def requests(self) -> int:
        total = 0
        for p in self.procs:
            p.stdin.write("count\n")
            p.stdin.flush()
            total += int(p.stdout.readline())
        return total

    def close(self) -> None:
        for p in self.procs:
            p.stdin.close()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def one_row(count: int, dead: int, latency: float, timeout: float, scrapes: int) -> dict:
    sims = SimulatorFleet(count, dead, latency)
    try:
        port = free_port()
        args = ["--no-collector.cpu", "--no-collector.filesystem", f"--hdhomerun.timeout={timeout}",
                *[f"--hdhomerun.device={a}" for a in sims.addresses]]
        with server(ours(port, *args), port, ready_path="/healthz"):
            scrape_for(port, 60, max_scrapes=1)  # warm-up: facts and tuner counts
            before = sims.requests()
            times = []
            for _ in range(scrapes):
                start = time.perf_counter()
                scrape_for(port, 60, max_scrapes=1)
                times.append(time.perf_counter() - start)
            requests = (sims.requests() - before) / scrapes
    finally:
        sims.close()
    return {"devices": count, "dead": dead, "median_s": statistics.median(times), "requests_per_scrape": requests}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="1,10,40,100")
    p.add_argument("--dead", type=int, default=3, help="also run each count (> dead) with this many dead devices")
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--timeout", type=float, default=2.5)
    p.add_argument("--scrapes", type=int, default=5)
    args = p.parse_args()
    rows = []
    for count in (int(c) for c in args.counts.split(",")):
        rows.append(one_row(count, 0, args.latency, args.timeout, args.scrapes))
        if args.dead and count > args.dead:
            rows.append(one_row(count, args.dead, args.latency, args.timeout, args.scrapes))
    single = rows[0]["median_s"]
    print("| devices | dead | median scrape (s) | × one device | device requests per scrape |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['devices']} | {r['dead']} | {r['median_s']:.3f} | {r['median_s'] / single:.2f} | {r['requests_per_scrape']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
