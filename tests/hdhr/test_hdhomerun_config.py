"""Wire compatibility with SiliconDust's own tool.

Runs Debian's ``hdhomerun_config`` (package ``hdhomerun-config``, built on libhdhomerun)
against our simulator on 127.0.0.1:65001 — the tool's port is fixed.  Only the ``<ip>``
forms are used: ``hdhomerun_config 127.0.0.1 get …`` and ``discover 127.0.0.1`` are
unicast.  The device-id form and a bare ``discover`` would broadcast and are never run.

If the binary is missing or port 65001 is taken, the tests FAIL (CI installs the tool and
owns the port); they never skip silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Iterator

import pytest

from otel_bare_metal.hdhr.client import Client
from otel_bare_metal.hdhr.simulator import Simulator
from otel_bare_metal.hdhr.text import parse_tuner_debug

PORT = 65001  # fixed in libhdhomerun
TOOL = "hdhomerun_config"


def _tool() -> str:
    path = shutil.which(TOOL) or ("/usr/bin/hdhomerun_config" if os.path.exists("/usr/bin/hdhomerun_config") else None)
    if path is None:
        pytest.fail(f"{TOOL} not found: install Debian's hdhomerun-config package (apt-get install hdhomerun-config)")
    return path


@pytest.fixture(scope="module")
def device() -> Iterator[Simulator]:
    sim = Simulator("127.0.0.1", PORT, tuners=4)
    try:
        sim.start()
    except OSError as e:
        pytest.fail(f"port {PORT} on 127.0.0.1 is taken (TCP or UDP), cannot run the hdhomerun_config tests: {e}")
    yield sim
    sim.stop()


def hdhomerun_config(*args: str) -> subprocess.CompletedProcess[str]:
    assert args[0] in ("127.0.0.1", "discover"), "only the <ip> forms: anything else broadcasts"
    if args[0] == "discover":
        assert args[1:] == ("127.0.0.1",)
    return subprocess.run([_tool(), *args], capture_output=True, text=True, timeout=10)


def test_get_sys_model(device: Simulator) -> None:
    r = hdhomerun_config("127.0.0.1", "get", "/sys/model")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hdhomerun4_atsc\n", "")


def test_get_tuner0_debug(device: Simulator) -> None:
    r = hdhomerun_config("127.0.0.1", "get", "/tuner0/debug")
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip("\n") == device.tuner_debug(0).rstrip("\n")
    assert parse_tuner_debug(r.stdout).net.stop == 4  # type: ignore[union-attr]


def test_get_locked_tuner_debug_matches_our_client(device: Simulator) -> None:
    r = hdhomerun_config("127.0.0.1", "get", "/tuner1/debug")
    assert r.returncode == 0, r.stderr
    theirs = parse_tuner_debug(r.stdout)
    with Client("127.0.0.1") as c:
        ours = c.tuner_debug(1)
    assert theirs.tun is not None and theirs.tun.locked
    assert theirs.tun.channel == ours.tun.channel  # type: ignore[union-attr]
    assert theirs.dev == ours.dev


def test_get_long_value_two_byte_length(device: Simulator) -> None:
    r = hdhomerun_config("127.0.0.1", "get", "/sys/features")
    assert r.returncode == 0
    assert len(r.stdout.encode()) > 127
    assert r.stdout.rstrip("\n") == device.value("/sys/features").rstrip("\n")  # type: ignore[union-attr]


def test_get_copyright_utf8(device: Simulator) -> None:
    r = hdhomerun_config("127.0.0.1", "get", "/sys/copyright")
    assert r.returncode == 0 and "©" in r.stdout


def test_unknown_variable(device: Simulator) -> None:
    r = hdhomerun_config("127.0.0.1", "get", "/sys/does-not-exist")
    assert (r.returncode, r.stdout) == (1, "ERROR: unknown getset variable\n")


def test_unknown_tuner(device: Simulator) -> None:
    r = hdhomerun_config("127.0.0.1", "get", "/tuner4/debug")
    assert (r.returncode, r.stdout) == (1, "ERROR: unknown getset variable\n")


def test_discover_unicast(device: Simulator) -> None:
    r = hdhomerun_config("discover", "127.0.0.1")
    assert (r.returncode, r.stdout) == (0, "hdhomerun device 12345674 found at 127.0.0.1\n")
