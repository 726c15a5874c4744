"""Run every benchmark, print the tables and write docs/benchmarks.md (with docs/benchmarks-scale.png).

    .venv/bin/python bench/run_all.py            # full run, a few minutes
    .venv/bin/python bench/run_all.py --quick    # smoke run, about a minute

Parts, in order: throughput beside node_exporter (bench/throughput.py), scale on synthetic
/proc trees (bench/scale.py), where a 256-CPU render's time goes (in process), HDHomeRun
fan-out (bench/hdhomerun_fanout.py), deadlines (bench/scrape_deadline.py), memory (bench/memory.py), /probe memory over many targets
(bench/probe_memory.py), 100 000 mounts (bench/mounts.py) and a short soak (bench/soak.py).
``--skip`` leaves parts out.  Everything runs on loopback; every loop is bounded.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from typing import Any, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hdhomerun_fanout  # noqa: E402
import memory  # noqa: E402
import mounts  # noqa: E402
import probe_budget  # noqa: E402
import probe_memory  # noqa: E402
import probe_vs_go as probe_bench  # noqa: E402
import profile_scrape  # noqa: E402
import scale  # noqa: E402
import shared_scrapes  # noqa: E402
import start_memory  # noqa: E402
import scrape_deadline  # noqa: E402
import slowloris  # noqa: E402
import auth_burst  # noqa: E402
import head_trickle  # noqa: E402
import soak  # noqa: E402
import throughput  # noqa: E402
from common import ROOT  # noqa: E402

PARTS = ("throughput", "profile", "shared", "start_memory", "scale", "breakdown", "fanout", "probe_go", "deadline", "memory",
         "probes", "probe-budget", "mounts", "soak", "slowloris", "trickle", "auth")
RATIO_TARGET, RATIO_STRETCH = 0.7, 1.0
CPU_RATIO_TARGET = 1.5  # CPU per scrape against Debian's node_exporter
NODE_SCALE_TARGET = 3.0  # 256 CPUs × 200 mounts: scrape time against node_exporter on the same tree
FLOOR_EVERYWHERE = 1.15  # the collection against the SDK's own floor, at every point of the grid
START_RSS_TARGET = 30e6
FANOUT_DEVICES, FANOUT_LATENCY, FANOUT_FACTOR = 100, 0.05, 1.5


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = "not installed"
    try:
        node = subprocess.run(["prometheus-node-exporter", "--version"], capture_output=True, text=True, timeout=10)
        node = (node.stdout or node.stderr).splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "sdk": version("opentelemetry-sdk"),
        "reader": version("opentelemetry-exporter-prometheus"),
        "prometheus_client": version("prometheus_client"),
        "node_exporter": node,
    }


def fanout(quick: bool) -> list[dict]:
    counts = (1, 10, FANOUT_DEVICES)
    scrapes = 3 if quick else 5
    rows = []
    for count in counts:
        log(f"fan-out: {count} device(s)")
        rows.append(hdhomerun_fanout.one_row(count, 0, FANOUT_LATENCY, 2.5, scrapes))
        if count > 3 and (not quick or count == FANOUT_DEVICES):
            log(f"fan-out: {count} device(s), 3 dead")
            rows.append(hdhomerun_fanout.one_row(count, 3, FANOUT_LATENCY, 2.5, scrapes))
    return rows


def fanout_table(rows: list[dict]) -> str:
    single = rows[0]["median_s"]
    lines = ["| devices | dead | median scrape (s) | × one device | device requests per scrape |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['devices']} | {r['dead']} | {r['median_s']:.3f} | {r['median_s'] / single:.2f} | {r['requests_per_scrape']:.0f} |")
    return "\n".join(lines)


def mark(ok: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "not measured"}[ok]


Row = tuple[str, str, "bool | None"]


def _row(name: str, measured: Any, verdict: Callable[[Any], tuple[str, bool | None]]) -> Row:
    """One line of a goal or target table: ``verdict(measured)`` gives its text and whether it is
    met; "not measured" when that part did not run (``measured`` empty)."""
    if not measured:
        return name, "", None
    text, ok = verdict(measured)
    return name, text, ok


def _throughput(t: dict) -> tuple[str, bool]:
    go = f"; against node_exporter built from source {t['ratio_go']:.2f}" if "ratio_go" in t else ""
    return f"{t['ratio']:.2f}× ({t['ours']['rate']:.0f} vs {t['node']['rate']:.0f} scrapes/s){go}", t["ratio"] >= RATIO_TARGET


def _cpu_per_scrape(t: dict) -> tuple[str, bool]:
    go = f"; against node_exporter built from source {t['cpu_ratio_go']:.2f}×" if "cpu_ratio_go" in t else ""
    return f"{t['cpu_ratio']:.2f}× ({t['ours']['cpu_ms']:.2f} vs {t['node']['cpu_ms']:.2f} ms){go}", t["cpu_ratio"] <= CPU_RATIO_TARGET


def _scale_vs_node(k: dict) -> tuple[str, bool]:
    ratio = k["median_ms"] / k["node_median_ms"]
    return f"{ratio:.2f}× ({k['median_ms']:.1f} vs {k['node_median_ms']:.1f} ms)", ratio <= NODE_SCALE_TARGET


def _floor_everywhere(rows: list[dict]) -> tuple[str, bool]:
    text = ", ".join(f"{r['cpus']}×{r['mounts']}: {r['floor_ratio']:.2f}" for r in sorted(rows, key=lambda r: (r["mounts"], r["cpus"])))
    return text, max(r["floor_ratio"] for r in rows) <= FLOOR_EVERYWHERE


def _start_memory(results: dict) -> Callable[[dict], tuple[str, bool]]:
    t = results.get("throughput")

    def verdict(sm: dict) -> tuple[str, bool]:
        node = ""
        if t:
            node = f" (Debian's node_exporter {t['node']['start_rss'] / 1e6:.1f} MB"
            node += f", built from source {t['node_go']['start_rss'] / 1e6:.1f} MB)" if "node_go" in t else ")"
        return f"{sm['process'] / 1e6:.1f} MB{node}", sm["process"] <= START_RSS_TARGET

    return verdict


def _key_with_node(results: dict) -> dict | None:
    rows = results.get("scale")
    k = scale.key_point(rows) if rows else None
    return k if k and k["node_median_ms"] else None


def goals(results: dict) -> list[Row]:
    """Issue 22's table: each goal met or not, as ratios beside node_exporter in the same run."""
    t = results.get("throughput")
    out = [
        _row("small host, /metrics over one keep-alive connection: throughput vs Debian's node_exporter >= 0.7× (stretch 1.0×)",
             t, _throughput),
        _row("same, CPU per scrape vs Debian's node_exporter <= 1.5×", t, _cpu_per_scrape),
        _row("256 CPUs × 200 mounts: scrape time vs node_exporter on the same tree <= 3.0×", _key_with_node(results), _scale_vs_node),
        _row("in-process collection vs the SDK's own floor <= 1.15× at every point", results.get("scale"), _floor_everywhere),
    ]
    out += probe_goals(results)
    out.append(_row("resident memory at start, all collectors <= 30 MB", results.get("start_memory"), _start_memory(results)))
    return out


def _fanout(f: list[dict]) -> tuple[str, bool | None]:
    single = next(r for r in f if r["devices"] == 1 and r["dead"] == 0)["median_s"]
    many = next((r for r in f if r["devices"] == FANOUT_DEVICES and r["dead"] == 0), None)
    if many is None:
        return f"{FANOUT_DEVICES} devices not measured", None
    factor = many["median_s"] / single
    return f"{many['median_s'] * 1000:.0f} ms vs {single * 1000:.0f} ms = {factor:.2f} ×", factor <= FANOUT_FACTOR


def targets(results: dict) -> list[Row]:
    rows = results.get("scale")
    return [
        _row("throughput ratio against node_exporter >= 0.7 (stretch 1.0)", results.get("throughput"),
             lambda t: (f"{t['ratio']:.2f}: {t['ours']['rate']:.0f} vs {t['node']['rate']:.0f} scrapes/s"
                        + (" (stretch 1.0 met too)" if t["ratio"] >= RATIO_STRETCH else ""), t["ratio"] >= RATIO_TARGET)),
        _row("256 CPUs × 200 mounts: median scrape <= 50 ms, every CPU series present, no overflow", rows,
             lambda r: scale.verdict(r)[::-1]),
        _row(f"256 CPUs × 200 mounts: the exporter's collection <= {scale.FLOOR_TARGET} × the SDK's own floor", rows,
             lambda r: scale.floor_verdict(r)[::-1]),
        _row("resident memory <= 60 MB after 10 000 scrapes, growing < 2 MB over the second 5 000", results.get("memory"),
             lambda m: memory.verdict(m)[::-1]),
        _row("/probe memory flat (growth < 5 MB) over distinct targets and over a cycling fleet", results.get("probes"),
             lambda m: probe_memory.verdict(m)[::-1]),
        _row("100 000 mounts: the filesystem source read inside the 5 s mount timeout", results.get("mounts"),
             lambda m: mounts.verdict(m)[::-1]),
        _row(f"{FANOUT_DEVICES} HDHomeRun devices at {FANOUT_LATENCY * 1000:.0f} ms latency: scrape within 1.5 × one device's time",
             results.get("fanout"), _fanout),
        _row("/metrics within 1 s during a 1 000-connection slowloris and a big-header attack, RSS bounded",
             results.get("slowloris"), lambda w: slowloris.verdict(w)[::-1]),
    ]


def goal_notes(results: dict) -> list[str]:
    """For each of issue 22's goals missed: the remaining cost, from this run's profile and
    floor, and why it cannot go lower in this design."""
    notes = []
    missed = {name for name, _, ok in goals(results) if ok is False}
    t, pr, rows = results.get("throughput"), results.get("profile"), results.get("scale")
    if t and pr and any(name.startswith(("small host", "same, CPU")) for name in missed):
        node_us = t["node"]["cpu_ms"] * 1000
        floor_us, server_us = pr["floor"][0], pr["http"][0]
        ours = {"the sources' reads": pr["sources"][0], "the collection machinery": pr["machinery"][0],
                "our observers": pr["observers"][0], "reading inside the SDK's collection": pr["inside"][0],
                "encoding": pr["encode"][0], "the page": pr["bookkeeping"][0], "HTTP (mostly the socket calls)": pr["http"][0] - pr["render"][0]}
        parts = ", ".join(f"{name} {us:.0f}" for name, us in ours.items())
        notes.append(
            f"**Small host: throughput {t['ratio']:.2f}×, CPU per scrape {t['cpu_ratio']:.2f}×.** Of one scrape's "
            f"{server_us:.0f} µs of server CPU (profile below), the SDK's own collection of its {pr['points']} points takes "
            f"{floor_us:.0f} µs: that alone is {floor_us / node_us:.2f}× of Debian's node_exporter's whole scrape "
            f"({node_us:.0f} µs), whatever we do around it. Ours, in µs: {parts}. The statfs batch is handed to the "
            "watchdog's thread (two thread wake-ups, tens of µs on this machine): the price of never calling statfs on "
            "the scrape's own thread, where a hung mount would hang the scrape. Throughput over one connection also "
            "pays each request's round trip and the client's own CPU on the same two cores. Lower needs the SDK's "
            "per-point path cheaper (an upstream change) or fewer points, which would drop series users rely on.")
    k = _key_with_node(results)
    if k and any(name.startswith("256 CPUs") for name in missed):
        notes.append(
            f"**256 CPUs × 200 mounts: {k['median_ms'] / k['node_median_ms']:.2f}× node_exporter's scrape time.** The "
            f"SDK's own floor for this point's {k['series']} series is {k['floor_ms']:.1f} CPU ms "
            f"({k['floor_ms'] / k['node_median_ms']:.2f}× node_exporter's whole scrape, {k['node_median_ms']:.1f} ms): a "
            "Measurement, attribute cleaning, a copy and a recursive hash per observation, an aggregation and a data "
            f"point per series. Our collection is {k['floor_ratio']:.2f}× that floor and our encoder a few ms; the goal "
            "is below what the SDK alone costs, so it cannot be met while every point goes through the SDK.")
    if rows and any(name.startswith("in-process collection") for name in missed):
        bad = [r for r in rows if r["floor_ratio"] > FLOOR_EVERYWHERE]
        worst = max(bad, key=lambda r: r["floor_ratio"])
        notes.append(
            f"**Collection against the SDK's floor: {len(bad)} of {len(rows)} points above {FLOOR_EVERYWHERE}×**, worst "
            f"{worst['floor_ratio']:.2f}× at {worst['cpus']} CPUs × {worst['mounts']} mounts ({worst['collect_ms']:.2f} vs "
            f"{worst['floor_ms']:.2f} ms, {(worst['collect_ms'] - worst['floor_ms']) * 1000:.0f} µs of ours). The floor is "
            "the SDK with every observation precomputed; the exporter also reads /proc/stat, looks at mountinfo (a poll "
            "while nothing is mounted), makes one Observation per point and hands the statfs batch to the watchdog's "
            "thread. That hand-off is a fixed cost of tens of µs per collection, so it weighs most where the SDK's own "
            "work is smallest (few CPUs, few mounts); it is the bound that keeps a hung mount from hanging a scrape, and "
            "is kept.")
    pg = results.get("probe_go")
    if pg and any(name.startswith("classic /probe") for name in missed):
        f = pg["fast"]
        notes.append(
            f"**/probe: {f['cpu_ratio']:.2f}× the Go exporter's CPU per probe** ({f['ours']['cpu_ms']:.2f} vs "
            f"{f['go']['cpu_ms']:.2f} ms). We export {f['ours']['series']} series per probe where it exports "
            f"{f['go']['series']} (every tuner's stream, network and error figures, up, the collector's own), and per "
            f"series we spend {f['cpu_per_series_ratio']:.2f}× its CPU. In process a probe is about 1.1 ms "
            "(`bench/probe_profile.py`): the SDK's own floor for those points is about 0.47 ms of it, the device read "
            "(four request/reply exchanges) 0.25–0.35 ms, encoding 0.1 ms; HTTP adds about 0.15 ms. A target's reader, "
            "its encoder caches and its device connection are kept between probes; what remains is per point or per "
            "request. The ratio moves by ±15 % between runs on this shared machine.")
    sm = results.get("start_memory")
    if sm and any(name.startswith("resident memory at start") for name in missed):
        layers = [rss for _, rss in sm["rows"]]
        mapped = sm.get("mappings", {})
        where = (f" Resident at start: libpython {mapped['libpython'] / 1e6:.1f} MB, OpenSSL {mapped['openssl'] / 1e6:.1f}, other "
                 f"libraries {mapped['library'] / 1e6:.1f}, and {(mapped['heap'] + mapped['anon']) / 1e6:.1f} MB of heap and "
                 "Python objects (the object arenas are nearly full: nothing left to give back)." if mapped else "")
        notes.append(
            f"**Resident memory at start: {sm['process'] / 1e6:.1f} MB.** The interpreter alone is {layers[0] / 1e6:.1f} MB, the "
            f"OpenTelemetry SDK adds {(layers[1] - layers[0]) / 1e6:.1f} MB and prometheus_client with the OTel Prometheus "
            f"reader {(layers[2] - layers[1]) / 1e6:.1f} MB (it imports ssl, hashlib, http.server and urllib: OpenSSL is "
            f"resident with it) — {layers[2] / 1e6:.1f} MB before a line of ours runs.{where} What the configuration does "
            "not use is not imported (OTLP and gRPC only with push on, the web-config module only with "
            "--web.config.file, psutil only off Linux) and the heap freed at start-up goes back to the kernel "
            "(malloc_trim). This source tree compiles its modules at every start (no cached bytecode here); installed "
            "from its wheel the exporter measures about 1.7 MB less (`bench/start_memory.py --python`). Under 30 MB "
            "would need the SDK or the Prometheus reader without prometheus_client, which the OTel Prometheus reader "
            "requires.")
    return notes


def not_met_notes(results: dict) -> list[str]:
    """For each target missed (other than issue 22's goals, above): the measured cause."""
    notes = []
    met = {name: ok for name, _, ok in targets(results)}
    b, rows = results.get("breakdown"), results.get("scale")
    if rows and met.get("256 CPUs × 200 mounts: median scrape <= 50 ms, every CPU series present, no overflow") is False:
        sdk = f"{b['sdk']:.0f} ms" if b else "most of the render"
        notes.append(
            f"**256 CPUs × 200 mounts, median scrape over 50 ms**: the SDK's collection alone takes {sdk} of it (see "
            "the breakdown below and the floor in the scale table); our text encoder already replaced the reader's "
            "translation and prometheus_client's encoding (about 50 ms of the stock path) with a few ms.")
    if results.get("fanout") and any(ok is False for name, ok in met.items() if "HDHomeRun" in name):
        notes.append(
            "**HDHomeRun fan-out**: one device's time is its four tuner requests in sequence (4 × the latency). 100 "
            "devices add, in the exporter, 400 request/reply exchanges woken at the same moments (the GIL serialises "
            "their parsing) and the SDK's collection of ~6 100 points (~100 ms); the simulators, in their own "
            "processes, share the same 2 cores. Fewer device threads (one selector loop) would trim the exchange part.")
    return notes


def _doc_sections(args: argparse.Namespace, png: Path | None) -> list[tuple[str, str, str, Callable[[Any], str], str]]:
    """The sections of docs/benchmarks.md after the goals and targets, in order: (results key,
    heading, what was measured, its table, what to read from it)."""
    return [
        ("throughput", "Throughput beside node_exporter",
         f"`/metrics` over one keep-alive connection, CPU + filesystem collectors on this machine, {args.rounds} alternating "
         f"rounds of {args.seconds:g} s each; node_exporter runs `--collector.disable-defaults --collector.cpu "
         "--collector.filesystem`.", throughput.table, ""),
        ("profile", "Where one small scrape's time goes",
         "`bench/profile_scrape.py`: the exporter's defaults on this host, in process, each part's median process CPU "
         "time; HTTP from a child client over one keep-alive connection (server CPU per scrape).", profile_scrape.table,
         "The SDK's own collection of the points (a Measurement, attribute cleaning and hashing per observation, an "
         "aggregation and a data point per series, per instrument a callback and a metric) is the largest part of a "
         "small scrape, and no work of ours; the filesystem source's statfs batch runs on its watchdog's thread (its bound on "
         "a hung mount); the collection machinery reads fast sources inline; the mount table is read only when it "
         "changed."),
        ("shared", "Concurrent scrapes share a collection",
         "`bench/shared_scrapes.py`: K clients (child processes, one keep-alive connection each) scrape the in-process "
         "exporter; a render that waited for the page lock answers with the collection that started after it arrived. "
         "Alternating with every render collecting.", shared_scrapes.table, ""),
        ("probe_go", "/probe beside the Go exporter", "`bench/probe_vs_go.py`.", probe_bench.table, ""),
        ("start_memory", "What the resident set is made of at start",
         "`bench/start_memory.py`: each step a fresh process importing one more layer; then the running exporter's "
         "resident set by kind of mapping (`/proc/<pid>/smaps`). MB = 10⁶ bytes.",
         lambda sm: start_memory.table(sm) + ("\n\n" + start_memory.mappings_table(sm) if sm.get("mappings") else ""), ""),
        ("scale", "Scale: synthetic /proc trees",
         "A generated `stat` (N CPUs, all 10 columns) and `1/mountinfo` (M ext4 mounts, distinct major:minor, each a real "
         "directory under the synthetic rootfs) fed to the exporter process through `--path.procfs`/`--path.rootfs`. "
         "Median of the scrapes after one warm-up; CPU-time series are expected at 8 per CPU (guest time is its own "
         "metric). node_exporter (`--collector.disable-defaults --collector.cpu --collector.filesystem`, same "
         "`--path.procfs`/`--path.rootfs`, an empty `--path.sysfs`) is scraped the same way on the same tree. "
         "*Collection CPU ms* is one collection in process (sources, mapping, SDK; no encoding) beside **the SDK's own "
         "floor**: a bare MeterProvider with the same instruments returning the same points and attribute sets "
         "precomputed (bench/floor.py); medians of process CPU time, alternating.", scale.table,
         f"![median scrape time against CPU count]({png.name})" if png else ""),
        ("breakdown", "Where a large scrape's time goes", "", scale.breakdown_table,
         "The SDK's share is per data point (a Measurement per observation, attribute cleaning, copying and hashing, the "
         "aggregation, a data point per series) and is fixed by the SDK; the translation and the encoding are per data "
         "point too, but they redo the same label work every scrape for attribute sets that do not change, which a "
         "reader subclass can cache. See the profile notes in [bench/README.md](../bench/README.md)."),
        ("fanout", "HDHomeRun fan-out",
         f"Simulated devices (4 tuners, every reply delayed {FANOUT_LATENCY * 1000:.0f} ms) in 4 child processes "
         "(bench/simulators.py); the exporter runs only the HDHomeRun collector with `--hdhomerun.timeout=2.5`. Dead "
         "devices accept and never answer: the warm-up scrape waits for them once; later scrapes report them down at "
         "once.", fanout_table, ""),
        ("deadline", "Scrapes that never wait on what is broken",
         "`bench/scrape_deadline.py`: the exporter with only the HDHomeRun collector and simulated devices (4 tuners, "
         "child processes; dead ones accept and never answer), then in process with an injected blocking mount-table "
         "read. Each beside its yardstick.", scrape_deadline.table, ""),
        ("memory", "Memory",
         "VmRSS of the exporter process (CPU + filesystem collectors on this machine, one HDHomeRun simulator for the "
         "probes). MB = 10⁶ bytes.", memory.table, ""),
        ("probes", "/probe memory over many targets",
         "VmRSS of the exporter (only /probe) probed over one connection: distinct loopback targets, then a fleet probed "
         "in turn; a few simulators, the rest dead `127.X.Y.Z:9`. MB = 10⁶ bytes.", probe_memory.table, ""),
        ("probe_budget", "/probe beside /metrics",
         "`bench/probe_budget.py`: /probe has slots of its own (`--hdhomerun.max-probes`), one deadline per probe (name "
         "lookup included) and one read in flight per device. Loopback targets that accept and never answer; a "
         "simulator answering in 200 ms; a dead simulator. node_exporter serves no /probe: no comparison under the same "
         "load.", probe_budget.table, ""),
        ("mounts", "Many mounts",
         "The filesystem collector on a fixture mountinfo with an injected statfs, one child process per point (peak RSS "
         "= its VmHWM). A whole scrape is one `/metrics` render of the filesystem collector.", mounts.table, ""),
        ("soak", "Soak", "", soak.table, ""),
        ("slowloris", "Slow and big clients",
         "`bench/slowloris.py`: a well-behaved client scrapes `/metrics` every 0.25 s on a fresh connection (failures "
         "counted at 5 s) while 1 000 connections trickle one header byte a second, then while 60 connections send 99 "
         "header lines of 64 KB and trickle the 100th; closed attack connections are reopened. Each exporter runs alone "
         "under the same attacks.", slowloris.table, ""),
        ("trickle", "Request heads a byte per segment",
         "`bench/head_trickle.py`: four connections each send a 30 KB request head one byte per TCP segment at 10 KB/s, "
         "while a scraper asks twice a second; the server's CPU, ours beside node_exporter under the same trickle.",
         head_trickle.table, ""),
        ("auth", "Basic auth under a burst",
         "`bench/auth_burst.py`: a cost-10 bcrypt user, nothing cached; 1 000 requests with distinct wrong passwords at "
         "once, then the right one (each answer awaited 30 s at most), ours beside node_exporter with the same web "
         "config.", auth_burst.table, ""),
    ]


def write_doc(path: Path, results: dict, facts: dict, args: argparse.Namespace, png: Path | None, elapsed: float) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python bench/run_all.py" + (" --quick" if args.quick else "") + (f" --skip {args.skip}" if args.skip else "")
    doc = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {now} in {elapsed / 60:.1f} minutes"
        + (" (**quick** run: smaller counts, fewer scrapes)" if args.quick else "") + ". Regenerate with the same command "
        "(see [bench/README.md](../bench/README.md)); nothing here is a test assertion.",
        "",
        "## Machine",
        "",
        f"- CPUs (nproc): {facts['nproc']}; model: {facts['cpu']}; kernel {facts['kernel']}",
        f"- Python {facts['python']}; opentelemetry-sdk {facts['sdk']}; opentelemetry-exporter-prometheus {facts['reader']}; "
        f"prometheus_client {facts['prometheus_client']}",
        f"- {facts['node_exporter']}",
        "",
        "The machine is small and shared: the client, the exporter and (for throughput) node_exporter "
        "share the same cores, and other work may run at the same time. Figures are medians; throughput "
        "alternates rounds between the two exporters. Expect ±15 % between runs.",
        "",
        "## Goals (issue 22)",
        "",
        "Each beside node_exporter in the same run, as ratios.",
        "",
        "| goal | measured | |",
        "|---|---|---|",
    ]
    for name, text, ok in goals(results):
        doc.append(f"| {name} | {text} | {mark(ok)} |")
    missed = goal_notes(results)
    if missed:
        doc += ["", "### Goals not met: the remaining cost, and why it cannot go lower in this design", ""] + [f"- {n}" for n in missed]
    doc += ["", "## Targets", "", "| target | measured | |", "|---|---|---|"]
    for name, text, ok in targets(results):
        doc.append(f"| {name} | {text} | {mark(ok)} |")
    needed = not_met_notes(results)
    if needed:
        doc += ["", "### Targets not met: where the time goes", ""] + [f"- {n}" for n in needed]
    for key, heading, intro, table, after in _doc_sections(args, png):
        if results.get(key):
            doc += ["", f"## {heading}", ""] + ([intro, ""] if intro else []) + [table(results[key])] + (["", after] if after else [])
    doc.append("")
    path.write_text("\n".join(doc))


def probe_goals(results: dict) -> list[Row]:
    """Issue 22's /probe goal lines (bench/probe_vs_go.py), met or not."""
    if "probe_go" in results:
        return probe_bench.verdicts(results["probe_go"])
    return [("classic /probe of one 4-tuner device, CPU per probe vs hdhomerun_exporter (Go) <= 1.5×", "", None)]




def _parts(args: argparse.Namespace) -> list[tuple[str, str, str, Callable[[], Any], str, Callable[[Any], str]]]:
    """Every part of a run, in order: (name for --skip, key in the results, what the log says,
    how to measure it, its heading, its table)."""
    quick = args.quick
    soak_seconds = args.soak_seconds if args.soak_seconds is not None else (10.0 if quick else 30.0)
    n_memory = 2_000 if quick else 10_000
    distinct, cycling, fleet = (3_000, 1_000, 500) if quick else (60_000, 10_000, 1_000)
    mount_counts = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    trickle = argparse.Namespace(connections=4, rate=10000.0, head_bytes=30000, seconds=10.0 if quick else 20.0,
                                 tree=None, node=True)  # fmt: skip
    grid = scale.quick_grid() if quick else scale.default_grid()

    def scale_rows() -> list[dict]:
        return scale.measure(grid, 7 if quick else 15, 30.0,
                             progress=lambda r: log(f"  {r['cpus']:>5} CPUs × {r['mounts']:>4} mounts: {r['median_ms']:.1f} ms"))

    return [
        ("throughput", "throughput", "throughput: ours and node_exporter, alternating rounds",
         lambda: throughput.measure(args.rounds, args.seconds, args.tree), "Throughput", throughput.table),
        ("profile", "profile", "profile: one small scrape",
         lambda: profile_scrape.measure(500 if quick else 2000), "Profile", profile_scrape.table),
        ("shared", "shared", "shared: concurrent scrapes",
         lambda: shared_scrapes.measure((1, 2, 4), 2.0 if quick else 4.0), "Shared collections", shared_scrapes.table),
        ("start_memory", "start_memory", "start memory", start_memory.measure, "Start memory", start_memory.table),
        ("scale", "scale", "scale: synthetic /proc trees", scale_rows, "Scale", scale.table),
        ("breakdown", "breakdown", "breakdown: 256 CPUs × 200 mounts in process",
         lambda: scale.breakdown(256, 200, 7 if quick else 15), "Breakdown", scale.breakdown_table),
        ("fanout", "fanout", "", lambda: fanout(quick), "HDHomeRun fan-out", fanout_table),
        ("probe_go", "probe_go", "probe vs Go: classic /probe and the Go exporter's per-probe work, one device",
         lambda: probe_bench.measure(100 if quick else 300, 6 if quick else 15, 2 if quick else 5),
         "/probe beside the Go exporter", probe_bench.table),
        ("memory", "memory", f"memory: {n_memory} scrapes then {n_memory} probes",
         lambda: memory.measure(n_memory, n_memory, 120.0 if quick else 240.0), "Memory", memory.table),
        ("probes", "probes", f"probes: {distinct} distinct targets, then {cycling} probes over {fleet}",
         lambda: probe_memory.measure(distinct, cycling, fleet), "/probe memory", probe_memory.table),
        ("probe-budget", "probe_budget", "probe budget: hanging probes beside /metrics, a hung name lookup, a burst, dead devices, SIGTERM",
         probe_budget.measure, "/probe beside /metrics", probe_budget.table),
        ("mounts", "mounts", f"mounts: {', '.join(map(str, mount_counts))}",
         lambda: mounts.measure(mount_counts, ["containers", "distinct"]), "Many mounts", mounts.table),
        ("soak", "soak", f"soak: {soak_seconds:g} s",
         lambda: soak.soak(soak_seconds, interval=max(1.0, soak_seconds / 15)) if soak_seconds > 0 else None, "Soak", soak.table),
        ("deadline", "deadline", "deadlines: dead devices, slow-link come-up, a hung collector",
         lambda: scrape_deadline.measure(10, 4 if quick else 6), "Scrapes that never wait on what is broken", scrape_deadline.table),
        ("slowloris", "slowloris", "slowloris and big headers: ours and node_exporter",
         lambda: slowloris.run(quick=quick), "Slow and big clients", slowloris.table),
        ("trickle", "trickle", "request heads a byte per segment: ours and node_exporter",
         lambda: head_trickle.measure(trickle), "Request heads a byte per segment", head_trickle.table),
        ("auth", "auth", "basic auth under a burst of wrong passwords: ours and node_exporter",
         lambda: auth_burst.measure(200 if quick else 1000, 30.0, None, node=True), "Basic auth under a burst", auth_burst.table),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: fewer rounds, scrapes, devices and requests")
    p.add_argument("--skip", default="", help=f"comma-separated parts to leave out: {','.join(PARTS)}")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--png", type=Path, default=ROOT / "docs" / "benchmarks-scale.png")
    p.add_argument("--tree", help="also run the exporter of this source tree (e.g. main before a change) in the throughput rounds")
    p.add_argument("--soak-seconds", type=float, default=None, help="default 30 (quick 10)")
    args = p.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(PARTS):
        p.error(f"unknown part(s) {', '.join(sorted(skip - set(PARTS)))}; parts: {', '.join(PARTS)}")
    args.rounds, args.seconds = (2, 2.0) if args.quick else (5, 5.0)
    started = time.monotonic()
    facts = machine()
    results: dict = {}
    png = None

    for part, key, message, measure, title, table in _parts(args):
        if part in skip:
            continue
        if message:
            log(message)
        result = measure()
        if result is None:
            continue
        results[key] = result
        print(f"## {title}\n\n{table(result)}\n")
        if part == "scale":
            png = scale.plot(result, args.png)

    elapsed = time.monotonic() - started
    print("## Goals (issue 22)\n")
    for name, text, ok in goals(results):
        print(f"- {name}: {text} → {mark(ok).strip('*')}")
    print("\n## Targets\n")
    for name, text, ok in targets(results):
        print(f"- {name}: {text} → {mark(ok).strip('*')}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_doc(args.out, results, facts, args, png, elapsed)
    print(f"\nwrote {args.out}" + (f" and {png}" if png else "") + f" in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
