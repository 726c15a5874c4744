"""/probe memory: resident set size (VmRSS) of the exporter across many distinct probe targets.

A fleet of more than the probe cache's 256 devices, or a caller cycling target names, must
not make the exporter grow.  The exporter runs as its own process (collectors off, only
/probe; ``--hdhomerun.allow-target=127.0.0.0/8:*``, ``--hdhomerun.timeout=0.2``) and is
probed over one keep-alive connection:

* **distinct**: --distinct probes (default 60 000), each of a different target (but the
  live ones, below, which are the same few simulators);
* **cycling**: --cycling probes (default 10 000) over --fleet targets (default 1 000) in turn.

Targets are loopback only: a few HDHomeRun simulators in this process (4 tuners each, every
--live-every-th probe, so full tuner series are rendered all along) and otherwise
``127.X.Y.Z:9`` addresses where nothing listens (refused at once: a dead device, ``up`` 0).
VmRSS is read from ``/proc/<pid>/status`` at start (after a warm-up of 300 probes) and
every tenth of each phase.  Reported: the table, and the growth over each phase against the
target (within a few MB of the start: we hold it to GROWTH_LIMIT).  Each phase is bounded by
--phase-seconds; a phase cut short says so.

    .venv/bin/python bench/probe_memory.py [--quick] [--distinct 60000] [--cycling 10000] [--fleet 1000]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import free_port, ours, rss_bytes, server  # noqa: E402

from otel_bare_metal.hdhr.simulator import Simulator  # noqa: E402

MB = 1_000_000
GROWTH_LIMIT = 5 * MB  # "RSS stays within a few MB of the start"
LIVE = 4  # simulators


def dead_target(n: int) -> str:
    """The n-th distinct loopback address (127.1.0.1 upwards), port 9 (discard: nothing listens)."""
    n += 1 + (1 << 16)
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}:9"


def probe_many(port: int, targets, count: int, seconds: float, samples: int, pid: int) -> tuple[int, list[tuple[int, int]]]:
    """Probe ``count`` targets from the iterator over one connection; (probes made, [(probes, rss)])."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    points = [(0, rss_bytes(pid))]
    every = max(1, count // samples)
    deadline = time.monotonic() + seconds
    n = 0
    try:
        for target in targets:
            if n >= count or time.monotonic() > deadline:
                break
            conn.request("GET", f"/probe?target={target}")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or b"hdhomerun_up" not in body:
                raise RuntimeError(f"probe of {target}: HTTP {response.status} {body[:200]!r}")
            n += 1
            if n % every == 0:
                points.append((n, rss_bytes(pid)))
    finally:
        conn.close()
    if points[-1][0] != n:
        points.append((n, rss_bytes(pid)))
    return n, points


def measure(distinct: int = 60_000, cycling: int = 10_000, fleet: int = 1_000, live_every: int = 50,
            phase_seconds: float = 600.0) -> dict:
    with ExitStack() as stack:
        sims = [stack.enter_context(Simulator("127.0.0.1", 0, tuners=4)) for _ in range(LIVE)]
        live = [s.address_text for s in sims]
        port = free_port()
        cmd = ours(port, "--no-collector.cpu", "--no-collector.filesystem", "--hdhomerun.allow-target=127.0.0.0/8:*",
                   "--hdhomerun.timeout=0.2")
        proc = stack.enter_context(server(cmd, port, ready_path="/healthz"))

        def distinct_targets():
            n = 0
            while True:
                yield live[n // live_every % LIVE] if n % live_every == 0 else dead_target(n)
                n += 1

        def fleet_targets():
            n = 0
            while True:
                i = n % fleet
                yield live[i // live_every % LIVE] if i % live_every == 0 else dead_target(10_000_000 + i)
                n += 1

        warm, _ = probe_many(port, (dead_target(5_000_000 + i) for i in range(300)), 300, phase_seconds, 1, proc.pid)
        time.sleep(0.5)
        start = time.perf_counter()
        done_d, points_d = probe_many(port, distinct_targets(), distinct, phase_seconds, 10, proc.pid)
        rate_d = done_d / (time.perf_counter() - start)
        start = time.perf_counter()
        done_c, points_c = probe_many(port, fleet_targets(), cycling, phase_seconds, 10, proc.pid)
        rate_c = done_c / (time.perf_counter() - start)
    return {
        "distinct": (done_d, distinct, points_d, rate_d),
        "cycling": (done_c, cycling, points_c, rate_c),
        "fleet": fleet,
    }


def table(m: dict) -> str:
    lines = ["| phase | probes | VmRSS (MB) | growth from the phase's start (MB) |", "|---|---:|---:|---:|"]
    for phase in ("distinct", "cycling"):
        done, wanted, points, rate = m[phase]
        base = points[0][1]
        for n, rss in points:
            lines.append(f"| {phase} | {n} | {rss / MB:.1f} | {(rss - base) / MB:+.1f} |")
    d, c = m["distinct"], m["cycling"]
    lines += ["", f"{d[0]} distinct targets at {d[3]:.0f} probes/s; {c[0]} probes cycling {m['fleet']} targets at "
                  f"{c[3]:.0f} probes/s; one keep-alive connection."]
    for phase in ("distinct", "cycling"):
        done, wanted, _, _ = m[phase]
        if done != wanted:
            lines.append(f"The {phase} phase was cut short by its time bound: {done} of {wanted} probes.")
    return "\n".join(lines)


def verdict(m: dict) -> tuple[bool, str]:
    parts, ok = [], True
    for phase, what in (("distinct", "distinct targets"), ("cycling", f"probes cycling {m['fleet']} targets")):
        done, _, points, _ = m[phase]
        growth = max(rss for _, rss in points) - points[0][1]
        ok = ok and growth < GROWTH_LIMIT
        parts.append(f"{done} {what}: VmRSS {points[0][1] / MB:.1f} -> {points[-1][1] / MB:.1f} MB "
                     f"(peak growth {growth / MB:+.1f} MB)")
    return ok, "; ".join(parts) + f" (target: growth < {GROWTH_LIMIT / MB:.0f} MB)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="6 000 distinct, 2 000 cycling 500")
    p.add_argument("--distinct", type=int, default=None)
    p.add_argument("--cycling", type=int, default=None)
    p.add_argument("--fleet", type=int, default=None)
    p.add_argument("--live-every", type=int, default=50, help="every Nth probe goes to a live simulator")
    p.add_argument("--phase-seconds", type=float, default=600.0, help="time bound for each phase")
    args = p.parse_args()
    distinct = args.distinct or (6_000 if args.quick else 60_000)
    cycling = args.cycling or (2_000 if args.quick else 10_000)
    fleet = args.fleet or (500 if args.quick else 1_000)
    m = measure(distinct, cycling, fleet, args.live_every, args.phase_seconds)
    print(table(m))
    ok, text = verdict(m)
    print(f"\n{'MET' if ok else 'NOT MET'}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
