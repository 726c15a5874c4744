"""What the exporter's resident set is made of at start.

Each step runs in a fresh child process that imports (or builds) one more layer than the step
before; VmRSS is read from ``/proc/self/status`` after it.  The last step is the exporter
itself as run (every collector on, answering ``/healthz``, no scrape yet), with its threads.
The OTLP step imports the exporters ``--otel`` push would use; with push off the exporter never
imports them.  MB = 10⁶ bytes.

What is installed counts: the SDK's resources module imports psutil whenever it is installed.
On Linux the package does not depend on psutil (only its fallbacks for other systems use it),
but the test extra installs it, so a development virtualenv measures about 1 MB more than the
exporter installed from its wheel.  ``--python`` measures another installation, e.g. a
virtualenv holding only the wheel (``python3 -m venv /tmp/v && /tmp/v/bin/pip install .``);
its children then run from ``/``, away from this source tree.

    .venv/bin/python bench/start_memory.py [--python /tmp/v/bin/python]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, rss_bytes, server  # noqa: E402

MB = 1_000_000
STEPS = [
    ("the interpreter", ""),
    ("+ OpenTelemetry SDK (metrics, resources)", "import opentelemetry.sdk.metrics, opentelemetry.sdk.resources"),
    ("+ prometheus_client and the OTel Prometheus reader (ssl, http.server, urllib come with them)",
     "import prometheus_client, opentelemetry.exporter.prometheus"),
    ("+ the exporter's modules (app, cli, collectors, HTTP server, web config)", "import otel_bare_metal.cli, otel_bare_metal.app"),
    ("+ an App built (every collector, provider, page, /probe route)",
     "from otel_bare_metal.app import App, Config; App(Config())"),
]
OTLP = "import opentelemetry.exporter.otlp.proto.grpc.metric_exporter, opentelemetry.exporter.otlp.proto.http.metric_exporter"
PROBE = "import re\nfor l in open('/proc/self/status'):\n    if l.startswith('VmRSS'): print(int(l.split()[1]) * 1024)"


def _rss_after(code: str, python: str, cwd: str | None) -> int:
    out = subprocess.run([python, "-c", f"{code}\n{PROBE}"], capture_output=True, text=True, timeout=120, cwd=cwd)
    return int(out.stdout.strip() or 0)


def measure(python: str | None = None) -> dict:
    """``python``: the interpreter of another installation (default: this one, on this tree)."""
    cwd = "/" if python else None
    python = python or sys.executable
    rows, code = [], ""
    for label, step in STEPS:
        code = f"{code}\n{step}" if step else code
        rows.append((label, _rss_after(code, python, cwd)))
    otlp = _rss_after(code + "\n" + OTLP, python, cwd)
    port = free_port()
    command = [python, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}"]
    with server(command, port, ready_path="/healthz", cwd=cwd) as proc:
        time.sleep(0.5)
        started = rss_bytes(proc.pid)
        with open(f"/proc/{proc.pid}/status") as f:
            threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
        parts = mappings(proc.pid)
    return {"rows": rows, "otlp": otlp, "process": started, "threads": threads, "mappings": parts}


KINDS = (
    ("libpython", "libpython and the interpreter: the interpreter's code"),
    ("openssl", "OpenSSL (libcrypto, libssl, _ssl, _hashlib): hashlib and ssl, imported by prometheus_client "
                "(urllib.request, http.server)"),
    ("library", "other shared libraries and extension modules (libc, libm, zlib, _ctypes, …)"),
    ("file", "other mapped files (locale, gconv)"),
    ("heap", "[heap]: malloc (Python objects over 512 bytes, C libraries' data)"),
    ("anon", "anonymous: Python's object arenas (objects up to 512 bytes), malloc's large blocks, thread stacks"),
    ("stack", "[stack]: the main thread's stack"),
)


def _kind(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    if not path:
        return "anon"
    if path == "[heap]":
        return "heap"
    if path == "[stack]":
        return "stack"
    if path.startswith("["):
        return "library"  # [vdso] and the like
    if name.startswith(("libcrypto", "libssl", "_ssl.", "_hashlib.")):
        return "openssl"
    if name.startswith(("libpython", "python")):
        return "libpython"
    if ".so" in name:
        return "library"
    return "file"


def mappings(pid: int) -> dict[str, int]:
    """Resident bytes of a process by kind of mapping, from ``/proc/<pid>/smaps``."""
    out = dict.fromkeys((k for k, _ in KINDS), 0)
    kind = "anon"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 5)
            if head and "-" in head[0] and not head[0].endswith(":"):  # a mapping's header line
                kind = _kind(head[5].strip() if len(head) > 5 else "")
            elif head and head[0] == "Rss:":
                out[kind] += int(head[1]) * 1024
    return out


def mappings_table(m: dict) -> str:
    lines = ["| the exporter at start: resident in | MB |", "|---|---:|"]
    for kind, label in KINDS:
        lines.append(f"| {label} | {m['mappings'][kind] / MB:.1f} |")
    lines.append(f"| **total** | **{sum(m['mappings'].values()) / MB:.1f}** |")
    return "\n".join(lines)


def table(m: dict) -> str:
    lines = ["| step | VmRSS MB | added MB |", "|---|---:|---:|"]
    before = 0
    for label, rss in m["rows"]:
        lines.append(f"| {label} | {rss / MB:.1f} | {(rss - before) / MB:+.1f} |" if before else f"| {label} | {rss / MB:.1f} | |")
        before = rss
    lines.append(f"| (not imported with push off) + the OTLP gRPC and HTTP exporters | {m['otlp'] / MB:.1f} | {(m['otlp'] - before) / MB:+.1f} |")
    lines.append(f"| **the exporter at start** (serving, {m['threads']} threads) | **{m['process'] / MB:.1f}** | "
                 f"{(m['process'] - before) / MB:+.1f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", help="the interpreter of another installation to measure (default: this one)")
    args = p.parse_args()
    m = measure(args.python)
    print(table(m) + "\n\n" + mappings_table(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
