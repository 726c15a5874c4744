"""Basic auth under a burst: 1 000 requests with distinct wrong passwords at once, then the right one.

The exporter starts with a ``--web.config.file`` holding one user whose bcrypt hash costs 10 (the
``htpasswd -B`` default), so nothing is cached yet. Every burst request is written on its own connection
before the right one is sent; reported: how long the right request took, its status, and what the burst
got (401: checked and refused; 503: no bcrypt check could start in time, or the queue was full).
Loopback only; every read is bounded by --timeout.

    .venv/bin/python bench/auth_burst.py [--burst 1000] [--tree DIR] [--node]

``--tree DIR`` measures the exporter of another source tree the same way (e.g. the previous version).
"""

from __future__ import annotations

import argparse
import base64
import collections
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import bcrypt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, node_exporter, ours, server  # noqa: E402


def _auth(user: str, password: str) -> bytes:
    return base64.b64encode(f"{user}:{password}".encode())


def _request(auth: bytes) -> bytes:
    return b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nAuthorization: Basic " + auth + b"\r\n\r\n"


def _status(sock: socket.socket, timeout: float) -> int:
    sock.settimeout(timeout)
    try:
        head = sock.recv(64)
        return int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else -1
    except (OSError, ValueError, IndexError):
        return 0  # no answer within the timeout, or reset


def burst(port: int, n: int, timeout: float) -> dict:
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(_request(_auth("prometheus", f"wrong-{i}")))
        socks.append(s)
    start = time.monotonic()
    right = socket.create_connection(("127.0.0.1", port), timeout=10)
    right.sendall(_request(_auth("prometheus", "right")))
    status = _status(right, timeout)
    latency = time.monotonic() - start
    right.close()
    counts = collections.Counter(_status(s, timeout) for s in socks)
    for s in socks:
        s.close()
    return {"right_status": status, "right_seconds": latency, "burst": dict(counts)}


def measure(n: int, timeout: float, tree: str | None, node: bool = False) -> list[dict]:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    rows = []
    with tempfile.TemporaryDirectory() as d:
        config = Path(d) / "web.yml"
        hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
        config.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
        start = time.monotonic()
        bcrypt.checkpw(b"x", hashed.encode())
        one_check = time.monotonic() - start
        for label, where in (("otel-bare-metal", None), (f"otel-bare-metal ({tree})", tree)):
            if where is None and label != "otel-bare-metal":
                continue
            port = free_port()
            env, cwd = ({"PYTHONPATH": os.path.abspath(where)}, os.path.abspath(where)) if where else (None, None)
            cmd = ours(port, f"--web.config.file={config}", "--no-collector.filesystem")
            with server(cmd, port, ready_path="/healthz", env=env, cwd=cwd):
                row = burst(port, n, timeout)
            row.update(server=label, one_check_seconds=one_check, burst_size=n)
            rows.append(row)
        if node:
            port = free_port()
            with server(node_exporter(port, f"--web.config.file={config}"), port, ready_path="/"):
                row = burst(port, n, timeout)
            row.update(server="node_exporter", one_check_seconds=one_check, burst_size=n)
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| server | burst | right password: status | right password: seconds | burst answers | one bcrypt check (s) |",
           "|---|---:|---:|---:|---|---:|"]  # fmt: skip
    for r in rows:
        answers = ", ".join(f"{k or 'none'}: {v}" for k, v in sorted(r["burst"].items()))
        out.append(f"| {r['server']} | {r['burst_size']} | {r['right_status'] or 'none'} | {r['right_seconds']:.2f} | "
                   f"{answers} | {r['one_check_seconds']:.3f} |")  # fmt: skip
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--burst", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=30.0, help="longest wait for any one answer (default 30 s)")
    p.add_argument("--tree", help="also measure the exporter of this source tree")
    p.add_argument("--node", action="store_true", help="also measure node_exporter with the same web config")
    args = p.parse_args()
    print(table(measure(args.burst, args.timeout, args.tree, args.node)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
