"""Slow and big clients against the exporter, with node_exporter beside it as the yardstick.

Each server starts with a soft open files limit of 1 024 (``--nofile``), the usual default, and runs
alone. For each server, in one run and under the same attacks:

1. **baseline**: a well-behaved client scrapes ``/metrics`` (a new connection each time, 5 s timeout);
2. **slowloris**: ``--connections`` (1 000) connections each send a request line, then one header byte
   per connection every ``--tick`` seconds and never finish; closed ones are reopened at once, so the
   attack holds as many connections as the server lets it;
3. **big headers**: 60 connections each send 99 header lines of 64 KB, then trickle the 100th one byte
   per second; reopened when closed (at most twice a second each);
4. **after**: the attack stopped.

During each phase the well-behaved client scrapes every 0.25 s; reported: latency p50/p95/max, the
share of scrapes that failed (timeout, refused, reset: counted at 5 s) and the server's VmRSS (before,
peak during, after). The target: ``/metrics`` answers within a second during both attacks and RSS
stays bounded. Nothing is asserted; the figures go to docs/benchmarks.md.

    .venv/bin/python bench/slowloris.py             # about 2.5 minutes
    .venv/bin/python bench/slowloris.py --quick     # about 1 minute

Loopback only; every loop is bounded in count and time; every process started here is stopped.
"""

from __future__ import annotations

import argparse
import http.client
import os
import selectors
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, node_exporter, ours, rss_bytes, server  # noqa: E402

FAIL_SECONDS = 5.0


def raise_nofile() -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Prober(threading.Thread):
    """A well-behaved client: one scrape every ``interval`` s on a fresh connection, until stopped."""

    def __init__(self, port: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.port = port
        self.interval = interval
        self.latencies: list[float] = []
        self.failures = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        for _ in range(100_000):  # bounded; stopped long before
            if self.stopped.is_set():
                return
            start = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=FAIL_SECONDS)
                conn.request("GET", "/metrics")
                response = conn.getresponse()
                response.read()
                conn.close()
                ok = response.status == 200
            except OSError:
                ok = False
            elapsed = time.perf_counter() - start
            if ok:
                self.latencies.append(elapsed)
            else:
                self.failures += 1
                self.latencies.append(max(elapsed, FAIL_SECONDS))
            self.stopped.wait(max(0.0, self.interval - elapsed))


class RSSSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except OSError:
                return
            self.stopped.wait(self.interval)


def slowloris(port: int, connections: int, seconds: float, tick: float) -> dict:
    """Hold up to ``connections`` connections, each sending one header byte per ``tick``; reopen closed ones."""
    sel = selectors.DefaultSelector()
    socks: set[socket.socket] = set()
    opened = 0

    def open_one() -> None:
        nonlocal opened
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_READ)
            socks.add(s)
            opened += 1
        except OSError:
            s.close()

    def drop(s: socket.socket) -> None:
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        socks.discard(s)
        s.close()

    deadline = time.monotonic() + seconds
    started: set[socket.socket] = set()
    try:
        while time.monotonic() < deadline:
            while len(socks) < connections:
                open_one()
            tick_end = time.monotonic() + tick
            for s in list(socks):
                try:
                    if s in started:
                        s.send(b"a")
                    else:
                        s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: ")
                        started.add(s)
                except (BlockingIOError, InterruptedError):
                    pass  # still connecting
                except OSError:
                    drop(s)
                    started.discard(s)
            while time.monotonic() < tick_end:  # closed by the server? reopen next tick
                for key, _ in sel.select(timeout=max(0.0, tick_end - time.monotonic())):
                    s = key.fileobj
                    try:
                        if s.recv(4096) == b"":
                            drop(s)
                            started.discard(s)
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        drop(s)
                        started.discard(s)
    finally:
        for s in list(socks):
            drop(s)
        sel.close()
    return {"opened": opened}


def big_headers(port: int, connections: int, seconds: float) -> dict:
    """``connections`` threads: 99 lines of 64 KB, then the 100th one byte a second; reconnect when closed."""
    stop = time.monotonic() + seconds
    opened = [0]
    line = b"X-Big: " + b"a" * (64 * 1024 - 9) + b"\r\n"

    def one() -> None:
        while time.monotonic() < stop:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    opened[0] += 1
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                    for _ in range(99):
                        s.sendall(line)
                    s.sendall(b"X-Last: ")
                    while time.monotonic() < stop:
                        s.sendall(b"a")
                        time.sleep(1.0)
            except OSError:
                time.sleep(0.5)  # closed or refused: at most two reconnects a second

    threads = [threading.Thread(target=one, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    return {"opened": opened[0]}


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return float("nan"), float("nan"), float("nan")
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered), p95, ordered[-1]


def phase(name: str, pid: int, port: int, seconds: float, attack=None) -> dict:
    prober, sampler = Prober(port), RSSSampler(pid)
    rss_before = rss_bytes(pid)
    prober.start()
    sampler.start()
    detail = attack() if attack is not None else (time.sleep(seconds) or {})
    prober.stopped.set()
    sampler.stopped.set()
    prober.join(FAIL_SECONDS + 5)
    sampler.join(5)
    p50, p95, worst = percentiles(prober.latencies)
    return {
        "phase": name, "scrapes": len(prober.latencies), "failed": prober.failures,
        "p50_ms": p50 * 1000, "p95_ms": p95 * 1000, "max_ms": worst * 1000,
        "rss_before_mb": rss_before / 2**20, "rss_peak_mb": max(sampler.peak, rss_before) / 2**20,
        "rss_after_mb": rss_bytes(pid) / 2**20, **{f"attack_{k}": v for k, v in detail.items()},
    }  # fmt: skip


def soft_nofile(limit: int):
    """A preexec function: start the server with this soft open files limit (the hard one unchanged), as
    a login session or systemd's default (1 024) gives it. Each server may raise it itself (Go does)."""

    def set_limit() -> None:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))

    return set_limit


def run_one(label: str, cmd: list[str], port: int, args: argparse.Namespace, tree: str | None = None) -> list[dict]:
    rows = []
    # python -m puts the working directory first on sys.path: run another tree from inside it.
    env, cwd = ({"PYTHONPATH": tree}, tree) if tree else (None, None)
    with server(cmd, port, env=env, preexec_fn=soft_nofile(args.nofile), cwd=cwd) as proc:
        time.sleep(1.0)
        rows.append(phase("baseline", proc.pid, port, args.baseline))
        rows.append(phase(f"slowloris ×{args.connections}", proc.pid, port, args.seconds,
                          lambda: slowloris(port, args.connections, args.seconds, args.tick)))  # fmt: skip
        time.sleep(1.0)
        rows.append(phase("big headers ×60", proc.pid, port, args.seconds, lambda: big_headers(port, 60, args.seconds)))
        time.sleep(2.0)
        rows.append(phase("after", proc.pid, port, args.baseline))
    for r in rows:
        r["server"] = label
    return rows


def run(quick: bool = False, connections: int = 1000) -> list[dict]:
    args = argparse.Namespace(quick=quick, connections=connections, tick=1.0, nofile=1024,
                              seconds=10.0 if quick else 25.0, baseline=3.0 if quick else 5.0)  # fmt: skip
    return measure(args)


def measure(args: argparse.Namespace) -> list[dict]:
    raise_nofile()
    rows = []
    port = free_port()
    rows += run_one("otel-bare-metal", ours(port), port, args)
    if getattr(args, "tree", None):  # another checkout, e.g. before the fix
        port = free_port()
        rows += run_one(f"otel-bare-metal ({os.path.basename(args.tree.rstrip('/'))})", ours(port), port, args,
                        tree=os.path.abspath(args.tree))  # fmt: skip
    port = free_port()
    rows += run_one("node_exporter", node_exporter(port), port, args)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| server | phase | scrapes | failed | p50 ms | p95 ms | max ms | RSS before MB | RSS peak MB | RSS after MB | attack connections opened |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        out.append(
            f"| {r['server']} | {r['phase']} | {r['scrapes']} | {r['failed']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{r['max_ms']:.1f} | {r['rss_before_mb']:.1f} | {r['rss_peak_mb']:.1f} | {r['rss_after_mb']:.1f} | "
            f"{r.get('attack_opened', '')} |"
        )
    ours_rows = {r["phase"]: r for r in rows if r["server"] == "otel-bare-metal"}
    node_rows = {r["phase"]: r for r in rows if r["server"] == "node_exporter"}
    out += ["", "| phase | p95 ours / node_exporter | RSS peak ours / node_exporter |", "|---|---:|---:|"]
    for name, r in ours_rows.items():
        n = node_rows.get(name)
        if n and n["p95_ms"] and n["rss_peak_mb"]:
            out.append(f"| {name} | {r['p95_ms'] / n['p95_ms']:.2f} | {r['rss_peak_mb'] / n['rss_peak_mb']:.2f} |")
    return "\n".join(out)


LATENCY_TARGET_MS, RSS_GROWTH_MB = 1000.0, 50.0


def verdict(rows: list[dict]) -> tuple[bool, str]:
    """Ours: every scrape during both attacks answered within a second, and the RSS peak stayed within
    50 MB of the baseline."""
    mine = [r for r in rows if r["server"] == "otel-bare-metal"]
    base = next(r for r in mine if r["phase"] == "baseline")
    attacks = [r for r in mine if r["phase"] not in ("baseline", "after")]
    worst = max(r["max_ms"] for r in attacks)
    failed = sum(r["failed"] for r in attacks)
    growth = max(r["rss_peak_mb"] for r in attacks) - base["rss_before_mb"]
    node = [r for r in rows if r["server"] == "node_exporter" and r["phase"] not in ("baseline", "after")]
    beside = f"; node_exporter worst {max(r['max_ms'] for r in node):.0f} ms" if node else ""
    text = f"worst scrape {worst:.0f} ms, {failed} failed, RSS +{growth:.1f} MB{beside}"
    return worst <= LATENCY_TARGET_MS and failed == 0 and growth <= RSS_GROWTH_MB, text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10 s attacks instead of 25 s")
    p.add_argument("--connections", type=int, default=1000, help="slowloris connections (default 1000)")
    p.add_argument("--tick", type=float, default=1.0, help="seconds between a slowloris connection's bytes")
    p.add_argument("--seconds", type=float, default=None, help="length of each attack")
    p.add_argument("--nofile", type=int, default=1024, help="soft open files limit the servers start with (default 1024)")
    p.add_argument("--tree", help="also measure the exporter of this source tree (e.g. a checkout before the fix)")
    args = p.parse_args()
    args.seconds = args.seconds or (10.0 if args.quick else 25.0)
    args.baseline = 3.0 if args.quick else 5.0
    rows = measure(args)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
