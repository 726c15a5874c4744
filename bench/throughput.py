"""Scrapes per second of /metrics over one connection: otel-bare-metal beside node_exporter.

Both run the CPU and filesystem collectors on this machine, in the same run, in alternating
rounds.  Reported: scrapes/s of each, the ratio (ours / node_exporter), and CPU seconds each
server spends per scrape.  Loopback only; bounded by --rounds × --seconds.

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
from common import cpu_seconds, free_port, node_exporter, ours, scrape_for, server  # noqa: E402


def measure(rounds: int, seconds: float, tree: str | None = None) -> dict:
    p_ours, p_node, p_tree = free_port(), free_port(), free_port()
    results: dict[str, list] = {"ours": [], "node": []}
    with ExitStack() as stack:
        a = stack.enter_context(server(ours(p_ours), p_ours))
        b = stack.enter_context(server(node_exporter(p_node), p_node))
        servers = [("ours", p_ours, a), ("node", p_node, b)]
        if tree:  # python -m puts the working directory first on sys.path: run the other tree from inside it
            tree = os.path.abspath(tree)
            c = stack.enter_context(server(ours(p_tree), p_tree, env={"PYTHONPATH": tree}, cwd=tree))
            servers.append(("tree", p_tree, c))
            results["tree"] = []
        for name, port, proc in servers:
            scrape_for(port, 0.5)  # warm up
        for _ in range(rounds):
            for name, port, proc in servers:
                cpu0 = cpu_seconds(proc.pid)
                n, elapsed, size = scrape_for(port, seconds)
                cpu = cpu_seconds(proc.pid) - cpu0
                results[name].append({"rate": n / elapsed, "cpu_per_scrape": cpu / n, "bytes": size})
    summary = {}
    for name, rows in results.items():
        summary[name] = {
            "rate": statistics.median(r["rate"] for r in rows),
            "cpu_ms": 1000 * statistics.median(r["cpu_per_scrape"] for r in rows),
            "bytes": rows[-1]["bytes"],
        }
    summary["ratio"] = summary["ours"]["rate"] / summary["node"]["rate"]
    if "tree" in summary:
        summary["tree_ratio"] = summary["ours"]["rate"] / summary["tree"]["rate"]
    return summary


def table(s: dict) -> str:
    lines = [
        "| exporter | scrapes/s (median) | CPU ms per scrape | body bytes |",
        "|---|---|---|---|",
        f"| otel-bare-metal | {s['ours']['rate']:.1f} | {s['ours']['cpu_ms']:.2f} | {s['ours']['bytes']} |",
        f"| node_exporter (cpu, filesystem) | {s['node']['rate']:.1f} | {s['node']['cpu_ms']:.2f} | {s['node']['bytes']} |",
    ]
    if "tree" in s:
        lines.append(f"| otel-bare-metal (--tree) | {s['tree']['rate']:.1f} | {s['tree']['cpu_ms']:.2f} | {s['tree']['bytes']} |")
    lines += ["", f"Throughput ratio (ours / node_exporter): **{s['ratio']:.2f}**"]
    if "tree" in s:
        lines.append(f"Throughput ratio (ours / --tree): **{s['tree_ratio']:.2f}**")
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
