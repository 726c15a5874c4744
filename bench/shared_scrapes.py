"""Concurrent scrapes of one page: what sharing a collection buys.

The exporter (CPU + filesystem collectors on this host) runs in this process; K clients, each
a child process with one keep-alive connection, scrape ``/metrics`` for --seconds.  Once with
collections shared (a render that waited for the page lock answers with the collection that
started after it arrived; exposition/prometheus.py) and once with every render collecting,
alternating.  Reported: scrapes/s, the share of scrapes answered by a shared collection, and
the server's CPU per scrape.

    .venv/bin/python bench/shared_scrapes.py [--clients 1,2,4] [--seconds 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, free_port  # noqa: E402
from profile_scrape import CLIENT, _process_cpu  # noqa: E402

sys.path.insert(0, str(ROOT))


class _NeverFresh(dict):
    def get(self, key, default=None):
        return -1.0


def measure(clients=(1, 2, 4), seconds: float = 4.0, rounds: int = 2) -> list[dict]:
    from otel_bare_metal.app import App, Config

    config = Config(listen_address=f"127.0.0.1:{free_port()}", collectors={"cpu": True, "filesystem": True})
    app = App(config).start()
    page, shared_started = app.page, app.page._started
    port = app.server.addresses[0].rsplit(":", 1)[1]
    rows = []
    try:
        for k in clients:
            row = {"clients": k}
            for share in (True, False) * rounds:
                page._started = shared_started if share else _NeverFresh()
                shared0, cpu0, t0 = page.shared, _process_cpu(), time.perf_counter()
                procs = [subprocess.Popen([sys.executable, "-c", CLIENT, port, "1000000", str(seconds)],
                                          stdout=subprocess.PIPE, text=True) for _ in range(k)]
                n = sum(int(p.communicate(timeout=seconds + 60)[0]) for p in procs)
                elapsed, cpu = time.perf_counter() - t0, _process_cpu() - cpu0
                key = "shared" if share else "alone"
                row.setdefault(key, []).append({"rate": n / elapsed, "cpu_ms": 1000 * cpu / n,
                                                "shared": (page.shared - shared0) / n})
            for key in ("shared", "alone"):
                runs = row[key]
                row[key] = {m: sorted(r[m] for r in runs)[len(runs) // 2] for m in runs[0]}
            rows.append(row)
    finally:
        page._started = shared_started
        app.close()
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| clients | scrapes/s, shared | scrapes/s, each collects | × | answered by a shared collection | "
             "server CPU ms per scrape, shared / each collects |", "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, a = r["shared"], r["alone"]
        lines.append(f"| {r['clients']} | {s['rate']:.0f} | {a['rate']:.0f} | {s['rate'] / a['rate']:.2f} | "
                     f"{100 * s['shared']:.0f} % | {s['cpu_ms']:.2f} / {a['cpu_ms']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", default="1,2,4")
    p.add_argument("--seconds", type=float, default=4.0)
    args = p.parse_args()
    print(table(measure(tuple(int(c) for c in args.clients.split(",")), args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
