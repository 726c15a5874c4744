"""Many mounts: time and peak memory of the filesystem collector with up to 100 000 mounts.

A fixture ``proc/1/mountinfo`` with N ext4 mounts (each its own ``major:minor``, none
excluded) and an injected statfs that answers at once, so the figures are the exporter's own
cost, not the disks'.  Each N runs in a child process (peak RSS is VmHWM of that process):

* **source read** — what the mount timeout (``--collector.filesystem.mount-timeout``, default
  5 s) bounds: read and parse mountinfo, filter and de-duplicate, statfs every mount through
  the watchdog's workers.  Also split into its three steps.
* **whole scrape** — one ``/metrics`` render of the real ``App`` page (filesystem
  collector only) on that tree: the source read plus the SDK's collection and the encoding,
  the second of two renders (the first builds the SDK's per-series storage).

Reported: milliseconds, the source read against the mount timeout, and peak RSS.

    .venv/bin/python bench/mounts.py [--quick] [--counts 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MB = 1_000_000
MOUNT_TIMEOUT = 5.0


def write_tree(base: Path, mounts: int, shape: str = "distinct") -> Path:
    """``distinct``: every line its own ext4 filesystem (nothing excluded or de-duplicated: 9
    series each).  ``containers``: what a busy container host looks like — 1 % distinct ext4
    filesystems, the rest bind mounts of them, overlay roots, network namespaces (nsfs) and
    mounts under /var/lib/docker, which the default filters drop or de-duplicate."""
    proc = base / "proc"
    (proc / "1").mkdir(parents=True)
    lines = ["21 1 0:20 / / rw,relatime shared:1 - overlay overlay rw"]
    distinct = mounts if shape == "distinct" else max(1, mounts // 100)
    for m in range(mounts):
        if m < distinct:
            lines.append(f"{100 + m} 21 {8 + m // 1024}:{m % 1024} / /mnt/fs{m:06d} rw,relatime shared:{m + 2} - ext4 /dev/bench{m} rw")
            continue
        d = m % distinct
        kind = m % 4
        if kind == 0:  # a bind mount of a distinct filesystem: same major:minor, de-duplicated
            lines.append(f"{100 + m} 21 {8 + d // 1024}:{d % 1024} /data/{m} /srv/bind{m} rw,relatime - ext4 /dev/bench{d} rw")
        elif kind == 1:
            lines.append(f"{100 + m} 21 0:{100 + m % 900} / /run/containers/{m}/rootfs rw - overlay overlay rw,lowerdir=/l")
        elif kind == 2:
            lines.append(f"{100 + m} 21 0:4 net:[{4026531000 + m}] /run/netns/ns{m} rw - nsfs nsfs rw")
        else:
            lines.append(f"{100 + m} 21 8:1 /docker/{m} /var/lib/docker/volumes/v{m}/_data rw - ext4 /dev/sda1 rw")
    (proc / "1" / "mountinfo").write_text("\n".join(lines) + "\n")
    (proc / "stat").write_text("cpu  1 1 1 1\ncpu0 1 1 1 1\n")
    return proc


def child(mounts: int, shape: str) -> dict:
    """Run in the child: the measurements for one mount count."""
    from otel_bare_metal.app import App
    from otel_bare_metal.collectors.filesystem import FilesystemOptions
    from otel_bare_metal.config import Config
    from otel_bare_metal.collectors.filesystem.source import FilesystemSource, StatfsResult, StatfsWatchdog, select_mounts
    from otel_bare_metal.procfs import read_mountinfo
    from otel_bare_metal.telemetry import SourceWorker
    from otel_bare_metal.telemetry.resource import build_resource

    answer = StatfsResult(4096, 1_000_000, 400_000, 300_000, 65_536, 60_000)

    def statfs(path: str) -> StatfsResult:
        return answer

    with tempfile.TemporaryDirectory() as tmp:
        procfs = str(write_tree(Path(tmp), mounts, shape))
        out: dict = {"mounts": mounts, "shape": shape}
        source = FilesystemSource(procfs=procfs, watchdog=StatfsWatchdog(statfs, timeout=MOUNT_TIMEOUT))
        t0 = time.perf_counter()
        table = read_mountinfo(procfs)
        t1 = time.perf_counter()
        selected = select_mounts(table.mounts, source.filter.keep, source.rootfs)
        t2 = time.perf_counter()
        source.watchdog.stat_many([source.statfs_path(m.mountpoint) for m in selected])
        t3 = time.perf_counter()
        out.update(parse_ms=(t1 - t0) * 1000, select_ms=(t2 - t1) * 1000, statfs_ms=(t3 - t2) * 1000)
        reads = []
        for _ in range(3):
            start = time.perf_counter()
            stat = source.read()
            reads.append(time.perf_counter() - start)
        out["read_ms"] = sorted(reads)[1] * 1000
        out["filesystems"] = sum(1 for fs in stat.filesystems if fs.error is None)
        source.close()

        config = Config(listen_address="127.0.0.1:0", collectors={"filesystem": True, "cpu": False},
                        procfs=procfs, options={"filesystem": FilesystemOptions(mount_timeout=MOUNT_TIMEOUT)})
        fs = FilesystemSource(procfs=procfs, watchdog=StatfsWatchdog(statfs, timeout=MOUNT_TIMEOUT))
        exporter = App(config, resource=build_resource({}), collectors=[SourceWorker("filesystem", fs)])
        try:
            renders = []
            for _ in range(2):
                start = time.perf_counter()
                body, _ = exporter.page.render(None)
                renders.append(time.perf_counter() - start)
            out["scrape_ms"] = renders[-1] * 1000
            out["first_scrape_ms"] = renders[0] * 1000
            out["body_bytes"] = len(body)
            out["samples"] = body.count(b"\n") - body.count(b"\n#")
            out["fs_success"] = b'otel_bare_metal_collector_success{collector="filesystem"} 1.0' in body
        except Exception as e:  # the whole scrape failing is a result too
            out.update(scrape_ms=float("nan"), first_scrape_ms=float("nan"), samples=0, fs_success=False,
                       scrape_error=f"{type(e).__name__}: {e}")
        finally:
            exporter.close()
    with open("/proc/self/status") as f:
        out["peak_rss"] = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    return out


def measure(counts: list[int], shapes: list[str], seconds: float = 600.0) -> list[dict]:
    results = []
    for shape, n in ((s, n) for s in shapes for n in counts):
        proc = subprocess.run([sys.executable, __file__, "--child", str(n), "--shape", shape], capture_output=True,
                              text=True, timeout=seconds, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"{n} mounts: {proc.stderr[-2000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def table(results: list[dict]) -> str:
    lines = ["| shape | mounts | parse ms | select ms | statfs ms | source read ms (of the 5 s mount timeout) | whole scrape ms | "
             "first scrape ms | samples | filesystem success | peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        lines.append(f"| {r['shape']} | {r['mounts']} | {r['parse_ms']:.0f} | {r['select_ms']:.0f} | {r['statfs_ms']:.0f} | "
                     f"{r['read_ms']:.0f} ({r['read_ms'] / (MOUNT_TIMEOUT * 10):.0f} %) | {r['scrape_ms']:.0f} | "
                     f"{r['first_scrape_ms']:.0f} | {r['samples']} | {'yes' if r['fs_success'] else 'NO'} | "
                     f"{r['peak_rss'] / MB:.0f} |")
    lines += [f"\n{r['shape']}, {r['mounts']} mounts: the whole scrape failed: {r['scrape_error']}"
              for r in results if r.get("scrape_error")]
    return "\n".join(lines)


def verdict(results: list[dict]) -> tuple[bool, str]:
    """Met when, at the largest count of every shape, the source read is inside the mount timeout."""
    ok, parts = True, []
    for shape in dict.fromkeys(r["shape"] for r in results):
        big = max((r for r in results if r["shape"] == shape), key=lambda r: r["mounts"])
        inside = big["read_ms"] < MOUNT_TIMEOUT * 1000
        ok = ok and inside
        scrape = "failed" if big.get("scrape_error") else f"{big['scrape_ms'] / 1000:.2f} s"
        parts.append(f"{shape} {big['mounts']} mounts: source read {big['read_ms'] / 1000:.2f} s "
                     f"({'inside' if inside else 'OUTSIDE'} the {MOUNT_TIMEOUT:.0f} s mount timeout), whole scrape "
                     f"{scrape}, peak RSS {big['peak_rss'] / MB:.0f} MB")
    return ok, "; ".join(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 000 and 10 000 mounts")
    p.add_argument("--counts", default=None, help="comma-separated mount counts")
    p.add_argument("--shapes", default="containers,distinct", help="comma-separated: containers, distinct")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--shape", default="distinct", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.shape)))
        return 0
    counts = [int(c) for c in args.counts.split(",")] if args.counts else ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    results = measure(counts, args.shapes.split(","))
    print(table(results))
    ok, text = verdict(results)
    print(f"\n{'MET' if ok else 'NOT MET'}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
