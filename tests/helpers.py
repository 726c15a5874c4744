"""Shared test helpers: free loopback ports, a running exporter process, scraping and parsing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def builtin_metrics() -> tuple:
    """Every metric row of the built-in collectors, self-monitoring and the exporter's own process
    first (as docs/metrics.md lists them)."""
    from otel_bare_metal.process import METRICS as PROCESS
    from otel_bare_metal.registry import builtin_specs
    from otel_bare_metal.telemetry import SELF_MONITORING

    return SELF_MONITORING + PROCESS + tuple(m for spec in builtin_specs() for m in spec.metrics)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_for_http(url: str, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            fetch(url, timeout=1.0)
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def exporter_command() -> list[str]:
    return [sys.executable, "-m", "otel_bare_metal"]


@contextmanager
def running_exporter(*args: str, env: dict[str, str] | None = None, port: int | None = None):
    """Run the real ``otel-bare-metal`` command on a loopback port; yield its base URL."""
    port = port or free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen(
        [*exporter_command(), f"--web.listen-address=127.0.0.1:{port}", *args],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/healthz", proc=proc)
        yield base
    finally:
        stop_process(proc)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Exposition text → {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: install Debian's prometheus package (scripts/test does)"
    return path


def promtool_check_metrics(text: str | bytes) -> subprocess.CompletedProcess:
    data = text.encode() if isinstance(text, str) else text
    return subprocess.run([promtool(), "check", "metrics"], input=data, capture_output=True, timeout=30)


def log_text(records) -> str:
    """Captured log records (pytest's caplog.records) as the exporter writes them, one logfmt
    line each, fields included (caplog.text shows only the constant message)."""
    from otel_bare_metal.logutil import LogfmtFormatter

    return "\n".join(LogfmtFormatter().format(r) for r in records)


class ScriptedClient:
    """A stand-in for an HDHomeRun client (unit tests only) whose one tuner's /tuner0/debug CRC counter
    follows ``crc_values``, one value per read: resets and values no device should send included."""

    def __init__(self, crc_values):
        self.timeout = 1.0
        self.crc = iter(crc_values)

    def model(self, *, deadline):
        return "hdhomerun4_atsc"

    hwmodel = version = model

    def tuner_debug(self, n, *, deadline):
        from otel_bare_metal.hdhr import parse_tuner_debug

        return parse_tuner_debug(f"tun: ch=none lock=none ss=0 snq=0 seq=0\nts: bps=0 te=0 crc={next(self.crc)}\n")

    def close(self):
        pass


def scripted_device(crc_values):
    """A fleet ``Device`` with one tuner whose CRC counter reads ``crc_values`` in turn (a
    :class:`ScriptedClient`; the documentation address 192.0.2.1 is never dialled)."""
    from otel_bare_metal.collectors.hdhomerun.fleet import Device, Discovered

    return Device("192.0.2.1", timeout=1.0, client_factory=lambda address, timeout: ScriptedClient(crc_values),
                  discover=lambda address, window: Discovered("12345674", 1))
