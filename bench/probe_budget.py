"""/probe under load: can probes starve /metrics, and what does a burst of probes of one device cost?

Five measurements, loopback only, every loop bounded in count and time:

* **starve**: 40 concurrent probes of allowed targets that never answer (listening sockets that
  accept and stay silent; scrape timeout header 10 s), and meanwhile 20 scrapes of /metrics, one
  every 0.1 s: how many answer 200, their latency, and what a 41st probe gets.
* **slow-name**: a probe whose name lookup hangs (an injected resolver that blocks 10 s, as
  ``getaddrinfo`` does on a DNS server that never answers), scrape timeout header 2 s: how long
  the probe takes and its status.
* **burst**: 14 concurrent probes of one healthy device that answers each request in 200 ms
  (2 tuners): slowest probe, how many report ``hdhomerun_up 1``, requests the device served.
* **dead**: 3 concurrent probes of one device that never answers (default timeout 2.5 s):
  each probe's time.
* **sigterm**: the exporter as its own process, 3 probes of that dead device in flight, then
  SIGTERM: seconds until the process has exited (the grace is 5 s).

The exporter runs in this process (the first four) on whatever ``otel_bare_metal`` Python
imports, so the same script measures another checkout with ``PYTHONPATH=/path/to/checkout``
(how the before figures in bench/README.md were taken).

    .venv/bin/python bench/probe_budget.py [--skip starve,slow-name,burst,dead,sigterm]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
if "PYTHONPATH" not in os.environ:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import free_port  # noqa: E402

import otel_bare_metal  # noqa: E402
from otel_bare_metal.telemetry.resource import build_resource  # noqa: E402

try:  # this tree
    from otel_bare_metal.app import App  # noqa: E402
    from otel_bare_metal.collectors.hdhomerun import HDHomeRunOptions  # noqa: E402
    from otel_bare_metal.collectors.hdhomerun.allowlist import Allowlist  # noqa: E402
    from otel_bare_metal.config import Config  # noqa: E402
    from otel_bare_metal.hdhr.simulator import Faults, Simulator  # noqa: E402
    OLD = False
except ImportError:  # a checkout from before the folder-per-collector tree (the "before" figures)
    from otel_bare_metal.app import Config, Exporter as App  # type: ignore[no-redef]  # noqa: E402
    from otel_bare_metal.exposition.allowlist import Allowlist  # type: ignore[no-redef]  # noqa: E402
    from otel_bare_metal.hdhomerun.simulator import Faults, Simulator  # type: ignore[no-redef]  # noqa: E402
    OLD = True

TREE = Path(otel_bare_metal.__file__).resolve().parent.parent


def exporter(timeout: float = 2.5, max_requests: int = 40, max_probes: int = 40):
    """The exporter in this process, /probe only, loopback targets allowed, on an ephemeral port."""
    if OLD:
        return App(Config(listen_address="127.0.0.1:0", collectors={}, hdhomerun_allow_targets=["127.0.0.0/8:*"],
                          hdhomerun_timeout=timeout, max_requests=max_requests),
                   resource=build_resource({}), collectors=[], environ={}).start()
    options = HDHomeRunOptions(timeout=timeout, allow_targets=("127.0.0.0/8:*",), max_probes=max_probes)
    return App(Config(listen_address="127.0.0.1:0", collectors={}, max_requests=max_requests, options={"hdhomerun": options}),
               resource=build_resource({}), collectors=[]).start()


def set_allowlist(ex, allowlist) -> None:
    if OLD:
        ex.allowlist = allowlist
    else:
        ex.collector_routes["/probe"].handler.allowlist = allowlist


def get(url: str, timeout_header: float | None = None, timeout: float = 30.0) -> tuple[int, float, bytes]:
    headers = {} if timeout_header is None else {"X-Prometheus-Scrape-Timeout-Seconds": str(timeout_header)}
    started = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            return r.status, time.monotonic() - started, r.read()
    except urllib.error.HTTPError as e:
        return e.code, time.monotonic() - started, e.read()
    except OSError:
        return 0, time.monotonic() - started, b""


def concurrently(n: int, call) -> list:
    results: list = [None] * n
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, call()), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def up_values(body: bytes) -> list[str]:
    return [line.rsplit(" ", 1)[1] for line in body.decode(errors="replace").splitlines() if line.startswith("hdhomerun_up{")]


class Silent:
    """Listening sockets that accept and never answer."""

    def __init__(self, n: int):
        self.servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        for s in self.servers:
            s.settimeout(0.1)
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                self.held.append(server.accept()[0])
            except OSError:
                continue

    def targets(self) -> list[str]:
        return [f"127.0.0.1:{s.getsockname()[1]}" for s in self.servers]

    def close(self) -> None:
        self.stop.set()
        time.sleep(0.2)
        for c in self.held + self.servers:
            c.close()


def starve() -> str:
    silent = Silent(40)
    ex = exporter(timeout=30.0, max_requests=40, max_probes=40)
    base = f"http://127.0.0.1:{ex.server.port}"
    try:
        probes = [threading.Thread(target=get, args=(f"{base}/probe?target={t}", 10.0), daemon=True) for t in silent.targets()]
        for t in probes:
            t.start()
        end = time.monotonic() + 10
        while len(silent.held) < 40 and time.monotonic() < end:
            time.sleep(0.02)
        scrapes = []
        for _ in range(20):
            scrapes.append(get(f"{base}/metrics", timeout=10))
            time.sleep(0.1)
        extra = get(f"{base}/probe?target={silent.targets()[0]}", 10.0)
        for t in probes:
            t.join(30)
        ok = [s for s in scrapes if s[0] == 200]
        times = sorted(s[1] * 1000 for s in scrapes)
        return (f"| starve | {len(silent.held)} probes in flight; /metrics 200 for {len(ok)}/20 scrapes "
                f"(statuses {sorted({s[0] for s in scrapes})}), p50 {statistics.median(times):.0f} ms, max {times[-1]:.0f} ms; "
                f"41st probe: {extra[0]} in {extra[1] * 1000:.0f} ms |")
    finally:
        ex.close()
        silent.close()


def slow_name() -> str:
    release = threading.Event()

    def hanging(host, port):
        release.wait(10)
        return ["127.0.0.1"]

    ex = exporter()
    set_allowlist(ex, Allowlist(["127.0.0.0/8:*"], resolver=hanging))
    try:
        status, took, _ = get(f"http://127.0.0.1:{ex.server.port}/probe?target=slow.test", 2.0, timeout=20)
        return f"| slow-name | header 2 s: status {status} after {took:.2f} s |"
    finally:
        release.set()
        ex.close()


def burst() -> str:
    with Simulator("127.0.0.1", 0, tuners=2, faults=Faults(latency=0.2)) as sim:
        ex = exporter(timeout=2.5)
        try:
            url = f"http://127.0.0.1:{ex.server.port}/probe?target={sim.address_text}"
            get(url, 10.0)  # facts learned once
            served = sim.requests_served
            results = concurrently(14, lambda: get(url, 10.0))
            ups = sum(1 for status, _, body in results if status == 200 and [float(v) for v in up_values(body)] == [1.0])
            slowest = max(took for _, took, _ in results)
            return (f"| burst | 14 probes: slowest {slowest:.2f} s, {ups}/14 report up 1, "
                    f"{sim.requests_served - served} device requests |")
        finally:
            ex.close()


def dead() -> str:
    with Simulator("127.0.0.1", 0, tuners=1, faults=Faults(drop=True)) as sim:
        ex = exporter(timeout=2.5)
        try:
            url = f"http://127.0.0.1:{ex.server.port}/probe?target={sim.address_text}"
            results = concurrently(3, lambda: get(url))
            return "| dead | 3 probes: " + " / ".join(f"{took:.1f} s" for _, took, _ in sorted(results, key=lambda r: r[1])) + " |"
        finally:
            ex.close()


def sigterm() -> str:
    with Simulator("127.0.0.1", 0, tuners=1, faults=Faults(drop=True)) as sim:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(TREE), "PYTHONFAULTHANDLER": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}",
                                 "--no-collector.cpu", "--no-collector.filesystem", "--hdhomerun.allow-target=127.0.0.0/8:*"],
                                env=env, cwd=str(TREE), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            end = time.monotonic() + 20
            while get(base + "/healthz", timeout=1)[0] != 200 and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(0.5)  # the /healthz request's thread ends
            idle = len(os.listdir(f"/proc/{proc.pid}/task"))
            threads = [threading.Thread(target=get, args=(f"{base}/probe?target={sim.address_text}",), daemon=True)
                       for _ in range(3)]
            for t in threads:
                t.start()
            end = time.monotonic() + 10  # until the device is being read and all three are served (a thread each)
            while (sim.requests_served == 0 or len(os.listdir(f"/proc/{proc.pid}/task")) < idle + 3) and time.monotonic() < end:
                time.sleep(0.01)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=30)
                took = time.monotonic() - started
                left = " (requests still running at the end of the grace)" if "still running at shutdown" in err else ""
                for t in threads:
                    t.join(30)
                return f"| sigterm | exited {proc.returncode} {took:.1f} s after SIGTERM{left} |"
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack
                print(proc.communicate(timeout=30)[1][-8000:], file=sys.stderr)
                return "| sigterm | still running 30 s after SIGTERM |"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


CASES = {"starve": starve, "slow-name": slow_name, "burst": burst, "dead": dead, "sigterm": sigterm}


def measure(skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """One table row per case not skipped."""
    return [case() for name, case in CASES.items() if name not in skip]


def table(rows: list[str]) -> str:
    return "\n".join(["| case | result |", "|---|---|", *rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip", default="", help="comma-separated cases to skip: " + ",".join(CASES))
    args = p.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    print(f"otel_bare_metal from {TREE}")
    print("| case | result |\n|---|---|")
    for name, case in CASES.items():
        if name not in skip:
            print(case(), flush=True)


if __name__ == "__main__":
    main()
