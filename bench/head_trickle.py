"""Request heads sent one byte per TCP segment: the server's CPU while a few connections trickle.

Each of --connections connections sends ``GET /metrics HTTP/1.1`` followed by header lines, one byte
per ``send`` (TCP_NODELAY, so one byte per segment), as fast as --rate bytes per second per connection
allows, until its head reaches --head-bytes (below the 32 KB limit); then it finishes the head, reads the
answer and starts again. A server that rescans the whole buffered head on every read spends time
quadratic in the head's size; one that scans only the new bytes, linear. Reported: the server's CPU use
(percent of one core) during the trickle and at rest, and scrapes answered meanwhile.

    .venv/bin/python bench/head_trickle.py [--connections 4] [--rate 10000] [--seconds 20] [--tree DIR] [--node]

Loopback only; every loop is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_seconds, free_port, node_exporter, ours, scrape_for, server  # noqa: E402


def trickle(port: int, stop: threading.Event, rate: float, head_bytes: int, sent: list[int]) -> None:
    line = b"X-Trickle: " + b"a" * 50 + b"\r\n"
    interval = 1.0 / rate
    while not stop.is_set():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            head = b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
            while len(head) < head_bytes:
                head += line
            next_at = time.perf_counter()
            try:
                for i in range(len(head)):
                    if stop.is_set():
                        return
                    s.send(head[i:i + 1])
                    sent[0] += 1
                    next_at += interval
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                s.sendall(b"\r\n")
                s.settimeout(10)
                while s.recv(65536):
                    pass
            except OSError:
                pass  # cut at the head deadline: start again


def measure_one(label: str, port: int, proc, args: argparse.Namespace) -> dict:
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(3.0)
    idle = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
    stop = threading.Event()
    sent = [0]
    threads = [threading.Thread(target=trickle, args=(port, stop, args.rate, args.head_bytes, sent), daemon=True)
               for _ in range(args.connections)]  # fmt: skip
    for t in threads:
        t.start()
    time.sleep(1.0)
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    scrapes = 0
    while time.monotonic() - t0 < args.seconds:  # a scraper asking twice a second
        scrapes += scrape_for(port, 30.0, max_scrapes=1)[0]
        time.sleep(0.5)
    busy = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
    stop.set()
    for t in threads:
        t.join(15)
    return {"server": label, "idle_pct": 100 * idle, "trickle_pct": 100 * busy, "bytes_per_s": sent[0] / (time.monotonic() - t0 + 1.0),
            "scrapes": scrapes}  # fmt: skip


def measure(args: argparse.Namespace) -> list[dict]:
    rows = []
    for label, tree in (("otel-bare-metal", None), (f"otel-bare-metal ({args.tree})", args.tree)):
        if tree is None and label != "otel-bare-metal":
            continue
        port = free_port()
        env, cwd = ({"PYTHONPATH": os.path.abspath(tree)}, os.path.abspath(tree)) if tree else (None, None)
        with server(ours(port, "--no-collector.filesystem"), port, env=env, cwd=cwd) as proc:
            rows.append(measure_one(label, port, proc, args))
    if args.node:
        port = free_port()
        with server(node_exporter(port), port) as proc:
            rows.append(measure_one("node_exporter", port, proc, args))
    return rows


def table(rows: list[dict]) -> str:
    out = ["| server | CPU at rest (% of a core) | CPU while trickling (% of a core) | trickled bytes/s (all connections) | scrapes answered |",
           "|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        out.append(f"| {r['server']} | {r['idle_pct']:.1f} | {r['trickle_pct']:.1f} | {r['bytes_per_s']:.0f} | {r['scrapes']} |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--rate", type=float, default=10000.0, help="bytes per second per connection (default 10 000)")
    p.add_argument("--head-bytes", type=int, default=30000, help="head size before it is finished (default 30 000)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--tree", help="also measure the exporter of this source tree")
    p.add_argument("--node", action="store_true", help="also measure node_exporter under the same trickle")
    args = p.parse_args()
    print(table(measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
