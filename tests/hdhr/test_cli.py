"""The command line, run as a subprocess: exit codes, messages and timing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from otel_bare_metal.hdhr.cli import main
from otel_bare_metal.hdhr.simulator import Faults, Simulator

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "otel_bare_metal.hdhr.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )


@pytest.fixture(scope="module")
def module_sim() -> Iterator[Simulator]:
    sim = Simulator("127.0.0.1", 0).start()
    yield sim
    sim.stop()


def test_get_value(module_sim: Simulator) -> None:
    r = run("get", module_sim.address_text, "/sys/model")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hdhomerun4_atsc\n", "")


def test_get_multiline_value(module_sim: Simulator) -> None:
    r = run("get", module_sim.address_text, "/tuner0/debug")
    assert r.returncode == 0
    assert r.stdout == (
        "tun: ch=none lock=none ss=0 snq=0 seq=0 dbg=0\n"
        "dev: bps=0 resync=0 overflow=0\n"
        "ts:  bps=0 te=0 crc=0\n"
        "net: bps=0 pps=0 err=0 stop=4\n"
    )


def test_get_device_error(module_sim: Simulator) -> None:
    r = run("get", module_sim.address_text, "/sys/nothing")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "ERROR: unknown getset variable\n")


def test_get_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = run("get", f"127.0.0.1:{port}", "/sys/model")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "refused" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "faults,word",
    [
        (Faults(drop=True), "timeout"),
        (Faults(drip=0.4), "timeout"),
        (Faults(bad_crc=True), "bad checksum"),
        (Faults(garbage=True), "malformed reply"),
        (Faults(truncate=True), "malformed reply"),
    ],
    ids=["silent", "slow-drip", "bad-crc", "garbage", "truncated"],
)
def test_get_failures_within_timeout(faults: Faults, word: str) -> None:
    with Simulator("127.0.0.1", 0, faults=faults) as sim:
        start = time.monotonic()
        r = run("get", "--timeout", "1", sim.address_text, "/sys/model")
        elapsed = time.monotonic() - start
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(word), r.stderr
    # interpreter start-up included; the request itself is bounded by the 1 s deadline
    assert elapsed < 1 + 1.0
    if word == "timeout":
        assert elapsed >= 1.0


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("get",),
        ("get", "127.0.0.1"),
        ("get", "--timeout", "abc", "127.0.0.1", "/sys/model"),
        ("get", "--timeout", "-1", "127.0.0.1", "/sys/model"),
        ("get", "--timeout", "nan", "127.0.0.1", "/sys/model"),
        ("get", "127.0.0.1:99999", "/sys/model"),
        ("get", "[::1", "/sys/model"),
        ("frobnicate",),
        ("simulate", "--tuners", "99"),
        ("simulate", "--listen", "nohostport:x"),
        ("discover", "--timeout", "0"),
    ],
)
def test_bad_arguments_one_line_no_traceback(args: tuple[str, ...]) -> None:
    r = run(*args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_main_in_process_bad_args(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get"]) == 2
    assert main(["--help"]) == 0
    out = capsys.readouterr()
    assert "usage:" in out.out and "required" in out.err


def test_discover_unicast(module_sim: Simulator) -> None:
    r = run("discover", "--port", str(module_sim.address[1]), "127.0.0.1")
    assert (r.returncode, r.stdout) == (0, "hdhomerun device 12345674 found at 127.0.0.1\n")


def test_discover_host_colon_port(module_sim: Simulator) -> None:
    """``discover HOST:PORT`` takes the same address forms as ``get``."""
    r = run("discover", f"127.0.0.1:{module_sim.address[1]}")
    assert (r.returncode, r.stdout) == (0, "hdhomerun device 12345674 found at 127.0.0.1\n")


def test_discover_none_found() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        r = run("discover", "--timeout", "0.2", "--port", str(s.getsockname()[1]), "127.0.0.1")
    finally:
        s.close()
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "no devices found\n")


def test_simulate_serves_until_sigterm() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_bare_metal.hdhr.cli", "simulate", "--listen", "127.0.0.1:0",
         "--tuners", "2", "--cablecard"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        line = [""]
        reader = threading.Thread(target=lambda: line.__setitem__(0, proc.stderr.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(10)
        assert "with 2 tuners on 127.0.0.1:" in line[0], line[0]
        address = line[0].split(" on ")[1].split()[0]
        r = run("get", address, "/sys/model")
        assert r.stdout == "hdhomerun3_cablecard\n"
        r = run("get", address, "/tuner2/debug")
        assert r.returncode == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


def test_simulate_port_taken(module_sim: Simulator) -> None:
    r = run("simulate", "--listen", module_sim.address_text)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot bind" in r.stderr
