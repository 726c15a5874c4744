"""Scrapes per second of /metrics over one connection: otel-bare-metal beside node_exporter.

All run the CPU and filesystem collectors on this machine, in the same run, in alternating
rounds: ours, Debian's node_exporter and the current node_exporter built from source (when the
test suite has built it into ~/.cache/otel-bare-metal).  Reported: scrapes/s of each, the
ratios (ours / each), CPU seconds each server spends per scrape, and each one's resident set
at start (answering, not yet scraped).  Loopback only; bounded by --rounds × --seconds.

    .venv/bin/python bench/throughput.py [--rounds 3] [--seconds 5] [--tree DIR]

``--tree DIR`` also measures the exporter of another source tree (e.g. a checkout of the previous
version) in the same rounds, and reports this tree's rate over that one's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_seconds, free_port, go_node_exporter, node_exporter, ours, rss_bytes, scrape_for, server  # noqa: E402


def measure(rounds: int, seconds: float, tree: str | None = None) -> dict:
    results: dict[str, list] = {}
    start_rss: dict[str, int] = {}
    with ExitStack() as stack:
        servers = []

        def start(name: str, command: list[str], port: int, **kwargs) -> None:
            proc = stack.enter_context(server(command, port, **kwargs))
            start_rss[name] = rss_bytes(proc.pid)  # answering, not scraped yet
            servers.append((name, port, proc))
            results[name] = []

        p = free_port()
        start("ours", ours(p), p)
        p = free_port()
        start("node", node_exporter(p), p)
        p = free_port()
        if go_node_exporter(p) is not None:
            start("node_go", go_node_exporter(p), p)
        if tree:  # python -m puts the working directory first on sys.path: run the other tree from inside it
            tree = os.path.abspath(tree)
            p = free_port()
            start("tree", ours(p), p, env={"PYTHONPATH": tree}, cwd=tree)
        for name, port, proc in servers:
            scrape_for(port, 0.5)  # warm up
        for _ in range(rounds):
            for name, port, proc in servers:
                cpu0 = cpu_seconds(proc.pid)
                n, elapsed, size = scrape_for(port, seconds)
                cpu = cpu_seconds(proc.pid) - cpu0
                results[name].append({"rate": n / elapsed, "cpu_per_scrape": cpu / n, "bytes": size})
    summary: dict = {}
    for name, rows in results.items():
        summary[name] = {
            "rate": statistics.median(r["rate"] for r in rows),
            "cpu_ms": 1000 * statistics.median(r["cpu_per_scrape"] for r in rows),
            "bytes": rows[-1]["bytes"],
            "start_rss": start_rss[name],
        }
    summary["ratio"] = summary["ours"]["rate"] / summary["node"]["rate"]
    summary["cpu_ratio"] = summary["ours"]["cpu_ms"] / summary["node"]["cpu_ms"]
    if "node_go" in summary:
        summary["ratio_go"] = summary["ours"]["rate"] / summary["node_go"]["rate"]
        summary["cpu_ratio_go"] = summary["ours"]["cpu_ms"] / summary["node_go"]["cpu_ms"]
    if "tree" in summary:
        summary["tree_ratio"] = summary["ours"]["rate"] / summary["tree"]["rate"]
        summary["tree_cpu_ratio"] = summary["ours"]["cpu_ms"] / summary["tree"]["cpu_ms"]
    return summary


def table(s: dict) -> str:
    names = {"ours": "otel-bare-metal", "tree": "otel-bare-metal (--tree)", "node": "Debian's node_exporter (cpu, filesystem)",
             "node_go": "node_exporter built from source (cpu, filesystem)"}
    lines = ["| exporter | scrapes/s (median) | CPU ms per scrape | body bytes | RSS at start (MB) |", "|---|---|---|---|---|"]
    for key, label in names.items():
        if key in s:
            r = s[key]
            lines.append(f"| {label} | {r['rate']:.1f} | {r['cpu_ms']:.2f} | {r['bytes']} | {r['start_rss'] / 1e6:.1f} |")
    lines += ["", f"Ours / Debian's node_exporter: throughput **{s['ratio']:.2f}**, CPU per scrape **{s['cpu_ratio']:.2f} ×**"]
    if "ratio_go" in s:
        lines.append(f"Ours / node_exporter built from source: throughput **{s['ratio_go']:.2f}**, "
                     f"CPU per scrape **{s['cpu_ratio_go']:.2f} ×**")
    if "tree" in s:
        lines.append(f"Ours / --tree: throughput **{s['tree_ratio']:.2f}**, CPU per scrape **{s['tree_cpu_ratio']:.2f} ×**")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--tree", help="also measure the exporter of this source tree (e.g. the previous version)")
    args = p.parse_args()
    print(table(measure(args.rounds, args.seconds, args.tree)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
