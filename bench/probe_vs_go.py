"""Classic /probe beside hdhomerun_exporter's per-probe work in Go, on the same simulated device.

The Go side is tools/hdhomerun-peer in ``-listen`` mode (built by scripts/go-peers): per request it
dials the target, asks its model and features, reads every tuner's debug through
github.com/mdlayher/hdhomerun's ForEachTuner (twice per tuner, as hdhomerun_exporter does) and
serves a client_golang page, with the exporter's 1 s per-request timeout.  Our side is the
exporter with only the HDHomeRun collector, ``--metrics.naming=classic``, probed at
``/probe?target=``.  The device is one 4-tuner simulator in a child process (bench/simulators.py),
first answering at once, then taking ``--latency`` (20 ms) per reply.

Each side is probed over one keep-alive connection, alternating rounds; per round, CPU per probe is
the server process's utime + stime (/proc/<pid>/stat) over the round's probes divided by their
number, and time per probe is the round's wall time divided by the same.  Medians over rounds.
Our classic page has more series than the exporter's (the dev:/ts: figures, up, tuners, stop
reason), so CPU per series is shown beside CPU per probe; the goal is per probe.
Loopback only; every loop bounded in count.

    .venv/bin/python bench/probe_vs_go.py [--probes 300] [--slow-probes 15] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, cpu_seconds, free_port, ours, server  # noqa: E402
from hdhomerun_fanout import SimulatorFleet  # noqa: E402

CPU_TARGET = 1.5  # our CPU per probe against the Go exporter's
LATENCY = 0.020
WARMUP = 3


def go_peer() -> str:
    done = subprocess.run([str(ROOT / "scripts" / "go-peers"), "path", "hdhomerun-peer"],
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"scripts/go-peers could not build hdhomerun-peer:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def probe_round(port: int, pid: int, path: str, probes: int) -> tuple[float, float, int]:
    """``probes`` GETs of ``path`` over one connection after a warm-up: (CPU ms, wall ms) per
    probe, and the number of series on the last page."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        def get() -> bytes:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}: {body[:200]!r}")
            return body

        for _ in range(WARMUP):
            get()
        cpu, start = cpu_seconds(pid), time.perf_counter()
        for _ in range(probes):
            body = get()
        wall, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
    finally:
        conn.close()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return cpu * 1000 / probes, wall * 1000 / probes, series


def compare(latency: float, probes: int, rounds: int) -> dict:
    """Both servers against one simulated 4-tuner device: medians per side, and device requests per probe."""
    fleet = SimulatorFleet(1, 0, latency)
    try:
        target = fleet.addresses[0]
        py_port, go_port = free_port(), free_port()
        sides = {}
        with server(ours(py_port, "--metrics.naming=classic", "--hdhomerun.allow-target=127.0.0.0/8:*",
                         "--no-collector.cpu", "--no-collector.filesystem"), py_port, "/healthz") as py, \
             server([go_peer(), "-timeout=1s", "-listen", f"127.0.0.1:{go_port}"], go_port) as go:
            runs = {"ours": (py_port, py.pid, f"/probe?target={target}"),
                    "go": (go_port, go.pid, f"/metrics?target={target}")}
            samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in runs}
            requests = {name: 0 for name in runs}
            for r in range(rounds):
                for name in (("ours", "go") if r % 2 == 0 else ("go", "ours")):
                    before = fleet.requests()
                    samples[name].append(probe_round(*runs[name], probes))
                    requests[name] += fleet.requests() - before
            for name, rows in samples.items():
                sides[name] = {"cpu_ms": statistics.median(r[0] for r in rows),
                               "time_ms": statistics.median(r[1] for r in rows),
                               "series": rows[-1][2],
                               "requests": requests[name] / (rounds * (probes + WARMUP))}
    finally:
        fleet.close()
    return {"latency_ms": latency * 1000, "probes": probes, "rounds": rounds, **sides,
            "cpu_ratio": sides["ours"]["cpu_ms"] / sides["go"]["cpu_ms"],
            "time_ratio": sides["ours"]["time_ms"] / sides["go"]["time_ms"],
            "cpu_per_series_ratio": (sides["ours"]["cpu_ms"] / sides["ours"]["series"])
            / (sides["go"]["cpu_ms"] / sides["go"]["series"])}


def measure(probes: int = 300, slow_probes: int = 15, rounds: int = 3) -> dict:
    return {"fast": compare(0.0, probes, rounds), "slow": compare(LATENCY, slow_probes, rounds)}


def table(result: dict) -> str:
    lines = ["| device | side | CPU ms per probe | ms per probe | device requests per probe | series | CPU µs per series |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for key in ("fast", "slow"):
        r = result[key]
        device = f"4 tuners, {r['latency_ms']:.0f} ms per reply ({r['probes']} probes × {r['rounds']} rounds)"
        for name, label in (("ours", "ours, classic `/probe`"), ("go", "Go, mdlayher/hdhomerun + client_golang")):
            s = r[name]
            lines.append(f"| {device} | {label} | {s['cpu_ms']:.3f} | {s['time_ms']:.2f} | {s['requests']:.1f} | "
                         f"{s['series']} | {s['cpu_ms'] * 1000 / s['series']:.0f} |")
        lines.append(f"| {device} | **ours ÷ Go** | **{r['cpu_ratio']:.2f}×** | **{r['time_ratio']:.2f}×** | | | "
                     f"**{r['cpu_per_series_ratio']:.2f}×** |")
    return "\n".join(lines)


def verdicts(result: dict) -> list[tuple[str, str, bool]]:
    """Issue 22's two /probe goals: CPU per probe ≤ 1.5 × Go's; on a 20 ms device, faster than Go."""
    f, s = result["fast"], result["slow"]
    return [
        (f"classic /probe of one 4-tuner device, CPU per probe vs hdhomerun_exporter (Go) <= {CPU_TARGET}×",
         f"{f['cpu_ratio']:.2f}× ({f['ours']['cpu_ms']:.2f} vs {f['go']['cpu_ms']:.2f} ms; {f['ours']['series']} vs "
         f"{f['go']['series']} series, {f['cpu_per_series_ratio']:.2f}× per series)", f["cpu_ratio"] <= CPU_TARGET),
        (f"same, device taking {s['latency_ms']:.0f} ms per reply: time per probe, keep ahead of the Go exporter",
         f"{s['ours']['time_ms']:.0f} vs {s['go']['time_ms']:.0f} ms ({s['time_ratio']:.2f}×)", s["time_ratio"] < 1.0),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--probes", type=int, default=300, help="probes per round, device answering at once")
    p.add_argument("--slow-probes", type=int, default=15, help=f"probes per round, device taking {LATENCY * 1000:.0f} ms per reply")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    result = measure(args.probes, args.slow_probes, args.rounds)
    print(table(result))
    for name, text, ok in verdicts(result):
        print(f"- {name}: {text} → {'met' if ok else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
