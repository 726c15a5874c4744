"""Memory: resident set size (VmRSS) of the exporter process across many scrapes and probes.

The exporter runs as its own process with its defaults (CPU and filesystem collectors on this
machine) and ``--hdhomerun.allow-target=127.0.0.0/8:*``; one HDHomeRun simulator (4 tuners)
runs in this process.  VmRSS is read from ``/proc/<pid>/status``:

* at start (server answering ``/healthz``, no scrape yet);
* after the first half and after all of --scrapes scrapes of ``/metrics`` (one connection);
* after --probes probes ``/probe?target=<simulator>`` (one connection), and at their half.

Reported: the figures, the growth over the second half of the scrapes (target: < 2 MB over
the second 5 000) and over the second half of the probes.  Each phase is also bounded by
--phase-seconds; if a bound cuts a phase short the table says how many requests were made.
Loopback only.

    .venv/bin/python bench/memory.py [--quick] [--scrapes 10000] [--probes 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import free_port, ours, rss_bytes, scrape_for, server  # noqa: E402

from otel_bare_metal.hdhr.simulator import Simulator  # noqa: E402

MB = 1_000_000
RSS_LIMIT = 60 * MB  # the memory target: <= 60 MB after 10 000 scrapes
GROWTH_LIMIT = 2 * MB  # the memory target: < 2 MB over the second 5 000 scrapes


def measure(scrapes: int = 10_000, probes: int = 10_000, phase_seconds: float = 240.0) -> dict:
    half_s, half_p = scrapes // 2, probes // 2
    with Simulator("127.0.0.1", 0, tuners=4) as sim:
        port = free_port()
        cmd = ours(port, "--hdhomerun.allow-target=127.0.0.0/8:*")
        probe_path = f"/probe?target={sim.address_text}"
        with server(cmd, port, ready_path="/healthz") as proc:
            time.sleep(0.5)
            points = [("start", 0, 0, rss_bytes(proc.pid))]
            start = time.perf_counter()
            done_s = 0
            for label, n in ((f"after {half_s} scrapes", half_s), (f"after {scrapes} scrapes", scrapes - half_s)):
                got, _, _ = scrape_for(port, phase_seconds / 2, max_scrapes=n)
                done_s += got
                points.append((label, done_s, 0, rss_bytes(proc.pid)))
            scrape_elapsed = time.perf_counter() - start
            start = time.perf_counter()
            done_p = 0
            for label, n in ((f"+ {half_p} probes", half_p), (f"+ {probes} probes", probes - half_p)):
                got, _, _ = scrape_for(port, phase_seconds / 2, path=probe_path, max_scrapes=n)
                done_p += got
                points.append((label, done_s, done_p, rss_bytes(proc.pid)))
            probe_elapsed = time.perf_counter() - start
    rss = [p[3] for p in points]
    return {
        "points": points,
        "scrapes": done_s,
        "probes": done_p,
        "scrape_rate": done_s / scrape_elapsed if scrape_elapsed else 0.0,
        "probe_rate": done_p / probe_elapsed if probe_elapsed else 0.0,
        "after_scrapes": rss[2],
        "scrape_growth_second_half": rss[2] - rss[1],
        "probe_growth_second_half": rss[4] - rss[3],
        "requested": (scrapes, probes),
    }


def table(m: dict) -> str:
    lines = ["| point | /metrics scrapes | probes | VmRSS (MB) |", "|---|---:|---:|---:|"]
    for label, s, p, rss in m["points"]:
        lines.append(f"| {label} | {s} | {p} | {rss / MB:.1f} |")
    lines += [
        "",
        f"Growth over the second half of the scrapes: **{m['scrape_growth_second_half'] / 1000:+.0f} kB**; "
        f"over the second half of the probes: **{m['probe_growth_second_half'] / 1000:+.0f} kB** "
        f"({m['scrape_rate']:.0f} scrapes/s, {m['probe_rate']:.0f} probes/s, one connection each).",
    ]
    if (m["scrapes"], m["probes"]) != m["requested"]:
        lines.append(f"Phases were cut short by the time bound: {m['scrapes']} of {m['requested'][0]} scrapes, "
                     f"{m['probes']} of {m['requested'][1]} probes.")
    return "\n".join(lines)


def verdict(m: dict) -> tuple[bool, str]:
    after, growth = m["after_scrapes"], m["scrape_growth_second_half"]
    ok = after <= RSS_LIMIT and growth < GROWTH_LIMIT
    return ok, (f"VmRSS after {m['scrapes']} scrapes {after / MB:.1f} MB (target <= {RSS_LIMIT / MB:.0f} MB), "
                f"growth over the second {m['scrapes'] - m['scrapes'] // 2} scrapes {growth / 1000:+.0f} kB "
                f"(target < {GROWTH_LIMIT / MB:.0f} MB)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 000 scrapes and 1 000 probes")
    p.add_argument("--scrapes", type=int, default=None)
    p.add_argument("--probes", type=int, default=None)
    p.add_argument("--phase-seconds", type=float, default=240.0, help="time bound for each of the two phases")
    args = p.parse_args()
    default = 1_000 if args.quick else 10_000
    m = measure(args.scrapes or default, args.probes or default, args.phase_seconds)
    print(table(m))
    ok, text = verdict(m)
    print(f"\n{'MET' if ok else 'NOT MET'}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
