"""Benchmark helpers: start servers on loopback, scrape over one keep-alive connection, read CPU time."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_ready(port: int, path: str = "/metrics", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} not ready")


@contextmanager
def server(cmd: list[str], port: int, ready_path: str = "/metrics", env: dict | None = None, preexec_fn=None,
           cwd: str | None = None):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                            preexec_fn=preexec_fn, cwd=cwd)  # fmt: skip
    try:
        wait_ready(port, ready_path)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def ours(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}", *args]


def node_exporter(port: int, *args: str) -> list[str]:
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if not binary:
        raise SystemExit("prometheus-node-exporter not found: apt-get install prometheus-node-exporter")
    return [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
            "--collector.cpu", "--collector.filesystem", *args]


def go_node_exporter(port: int, *args: str) -> list[str] | None:
    """The current node_exporter built from source by the test suite (~/.cache/otel-bare-metal), or None."""
    found = sorted(Path.home().glob(".cache/otel-bare-metal/node_exporter-*/node_exporter"))
    if not found:
        return None
    return [str(found[-1]), f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
            "--collector.cpu", "--collector.filesystem", *args]


def scrape_for(port: int, seconds: float, path: str = "/metrics", max_scrapes: int = 1_000_000) -> tuple[int, float, int]:
    """Scrape over one connection for ``seconds`` (bounded also in count); return (scrapes, elapsed, bytes of last body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n, size = 0, 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline and n < max_scrapes:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        size = len(body)
        n += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return n, elapsed, size
