"""systemd: readiness and watchdog notifications, socket activation, and the example units.

The end-to-end tests start the real command the way systemd would: Debian's
``systemd-socket-activate`` binds a loopback socket and, on the first connection, execs the
exporter with ``LISTEN_FDS``/``LISTEN_PID`` (``--web.systemd-socket``), and a unix datagram
socket of the test stands in for the service manager's ``NOTIFY_SOCKET``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import FIXTURES, ROOT, fetch, free_port, samples, stop_process, wait_for_http
from logfmt_strict import check_promslog, parse_logfmt
from otel_bare_metal import systemd

UNITS = ROOT / "examples" / "systemd"


class NotifyListener:
    """A unix datagram socket standing in for systemd's notification socket."""

    def __init__(self, path: Path | str):
        self.address = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:] if self.address.startswith("@") else self.address)
        self.sock.settimeout(0.5)
        self.messages: list[str] = []

    def wait_for(self, state: str, timeout: float = 30.0, count: int = 1) -> bool:
        """Whether ``count`` messages holding ``state`` have arrived within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(state in m.split("\n") for m in self.messages) >= count:
                return True
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass
        return False

    def close(self) -> None:
        self.sock.close()


def test_notify_reaches_a_path_and_an_abstract_socket(tmp_path):
    for address in (str(tmp_path / "notify"), f"@otel-bare-metal-test-{os.getpid()}"):
        listener = NotifyListener(address)
        try:
            assert systemd.notify("READY=1\nSTATUS=x", {"NOTIFY_SOCKET": address})
            assert listener.wait_for("READY=1", timeout=5) and listener.messages == ["READY=1\nSTATUS=x"]
        finally:
            listener.close()


def test_notify_without_a_service_manager_does_nothing(tmp_path):
    assert not systemd.notify("READY=1", {})
    assert not systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})  # logged at debug, no raise
    assert not systemd.notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"})


@pytest.mark.parametrize("environ,interval", [
    ({}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_USEC": "20000000"}, 10.0),
    ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}, 10.0),
    ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
])
def test_the_watchdog_pings_at_half_of_watchdog_usec(environ, interval):
    assert systemd.watchdog_interval(environ) == interval


def test_the_watchdog_pings_only_while_healthy():
    sent: list[str] = []
    health = {"ok": True}
    enough = threading.Event()

    def send(state: str) -> bool:
        sent.append(state)
        if len(sent) >= 3:
            health["ok"] = False
            enough.set()
        return True

    dog = systemd.Watchdog(0.01, healthy=lambda: health["ok"], send=send).start()
    try:
        assert enough.wait(10)
        time.sleep(0.1)  # ten more intervals, unhealthy
    finally:
        dog.stop()
    assert sent == ["WATCHDOG=1"] * 3


def test_listen_fds_refuses_sockets_meant_for_another_process():
    environ = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x"}
    with pytest.raises(systemd.NoSockets, match="LISTEN_PID"):
        systemd.listen_fds(environ)
    assert environ == {}, "the variables are removed, as sd_listen_fds(unset_environment=1) does"
    with pytest.raises(systemd.NoSockets, match="LISTEN_FDS"):
        systemd.listen_fds({"LISTEN_PID": str(os.getpid())})


def test_systemd_socket_without_sockets_is_one_line_and_exit_1():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "OTEL_"))}
    result = subprocess.run([sys.executable, "-m", "otel_bare_metal", "--web.systemd-socket"], capture_output=True,
                            text=True, timeout=60, env={**env, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    record = check_promslog(parse_logfmt(line))
    assert record["msg"] == "cannot listen" and "no sockets passed by systemd" in record["err"]


SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
needs_socket_activate = pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate not installed")


@needs_socket_activate
def test_socket_activation_and_notify_for_real(tmp_path):
    """systemd-socket-activate binds 127.0.0.1:PORT and execs the exporter on the first
    connection: that connection is answered on the passed socket, READY=1 arrives once it
    listens, WATCHDOG=1 every half of WATCHDOG_USEC, STOPPING=1 on SIGTERM, exit 0."""
    port = free_port()
    listener = NotifyListener(tmp_path / "notify")
    command = [
        SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}",
        "-E", f"PYTHONPATH={ROOT}", "-E", f"NOTIFY_SOCKET={listener.address}", "-E", "WATCHDOG_USEC=400000",
        sys.executable, "-m", "otel_bare_metal", "--web.systemd-socket",
        f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}",
        "--web.listen-address=127.0.0.1:1",  # ignored with --web.systemd-socket, as node_exporter does
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:  # systemd-socket-activate binds first; it starts the exporter on this first connection
            try:
                status, _, body = fetch(f"http://127.0.0.1:{port}/metrics", timeout=30)
                break
            except OSError:  # connection refused until it binds
                assert time.monotonic() < deadline and proc.poll() is None, "systemd-socket-activate did not listen"
                time.sleep(0.05)
        assert status == 200 and b"system_cpu_time_seconds_total" in body
        assert listener.wait_for("READY=1")
        assert any(m.startswith("READY=1\nSTATUS=serving on 127.0.0.1:") for m in listener.messages)
        assert listener.wait_for("WATCHDOG=1", count=3), listener.messages  # it keeps pinging
        assert "STOPPING=1" not in listener.messages
        proc.send_signal(signal.SIGTERM)  # systemd-socket-activate exec'd: this is the exporter
        assert listener.wait_for("STOPPING=1")
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        listener.close()
    assert proc.returncode == 0, err
    records = [check_promslog(parse_logfmt(line)) for line in err.splitlines() if line.startswith("time=")]
    assert [r["address"] for r in records if r["msg"] == "listening"] == [f"127.0.0.1:{port}"]


# --- the example units ------------------------------------------------------------------------

def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_service_unit_is_type_notify_hardened_and_still_reads_proc_and_every_mount():
    service = _unit("otel-bare-metal.service")["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert "--web.systemd-socket" in service["ExecStart"][0]
    assert float(service["WatchdogSec"][0].rstrip("s")) > 0
    for option, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                          "ProtectHome": "read-only", "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes",
                          "RestrictSUIDSGID": "yes", "DynamicUser": "yes"}.items():
        assert service.get(option) == [value], option
    # What would stop it reading /proc/stat, PID 1's mountinfo or statfs on a mount: none of it.
    assert service.get("ProcSubset", ["all"]) == ["all"], "ProcSubset=pid hides /proc/stat"
    assert service.get("ProtectProc", ["default"]) == ["default"], "ProtectProc=invisible hides /proc/1/mountinfo"
    assert not {"InaccessiblePaths", "TemporaryFileSystem", "PrivateMounts"} & set(service)
    socket_unit = _unit("otel-bare-metal.socket")
    assert socket_unit["Socket"]["ListenStream"] == ["9464"]


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_units_and_rates_the_service_well(tmp_path):
    """systemd's own parser loads both units (offline: no running systemd is needed), and its
    security review of the service's sandboxing rates it well."""
    units = tmp_path / "units"
    units.mkdir()
    binary = tmp_path / "otel-bare-metal"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    for name in ("otel-bare-metal.service", "otel-bare-metal.socket"):
        (units / name).write_text((UNITS / name).read_text().replace("/opt/otel-bare-metal/bin/otel-bare-metal", str(binary)))
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "notice"}
    verify = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(units / "otel-bare-metal.service"),
                             str(units / "otel-bare-metal.socket")], capture_output=True, text=True, timeout=120, env=env)
    assert verify.returncode == 0 and "otel-bare-metal" not in verify.stderr, verify.stderr
    security = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager",
                               str(units / "otel-bare-metal.service")], capture_output=True, text=True, timeout=120, env=env)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout + security.stderr)
    assert match, security.stdout + security.stderr
    assert float(match.group(1)) <= 2.5, security.stdout


# What ProtectSystem=strict, ProtectHome=read-only, PrivateTmp=yes, CapabilityBoundingSet= and
# NoNewPrivileges=yes do to the process, in a mount namespace of the test's own (systemd itself
# is not running here): every mount read-only, a private /tmp, no capabilities, no new privileges.
# A checkout (or virtualenv) under /tmp is bound back into the private /tmp, as an installed
# exporter would live outside it: $OBM_KEEP holds the old /tmp, $OBM_PRESERVE the paths to keep.
SANDBOX = """
set -e
mount --make-rprivate /
if [ -n "$OBM_PRESERVE" ]; then mount --bind /tmp "$OBM_KEEP"; fi
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r mp; do mount -o remount,bind,ro "$mp" 2>/dev/null || true; done
mount -t tmpfs tmpfs /tmp
for path in $OBM_PRESERVE; do mkdir -p "$path"; mount --bind "$OBM_KEEP${path#/tmp}" "$path"; done
exec setpriv --inh-caps=-all --bounding-set=-all --no-new-privs "$@"
"""


def _under_tmp(path: str) -> bool:
    return path == "/tmp" or path.startswith("/tmp/")


def _filesystem_series(prefix: list[str], extra_env: dict[str, str] | None = None) -> dict:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        status, _, body = fetch(f"http://127.0.0.1:{port}/metrics")
    finally:
        stop_process(proc)
    assert status == 200
    return {(name, labels): value for (name, labels), value in samples(body.decode()).items()
            if name in ("system_filesystem_error", "otel_bare_metal_collector_success")}


def _can_unshare() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs CAP_SYS_ADMIN for a mount namespace (run as root)")
def test_the_sandbox_still_reads_proc_and_statfs_on_every_mount():
    plain = _filesystem_series([])
    preserve = sorted({p for p in (str(ROOT), sys.prefix) if _under_tmp(p)})
    keep = tempfile.mkdtemp(prefix="obm-old-tmp-", dir="/dev/shm" if os.path.isdir("/dev/shm") else "/var/tmp")
    try:
        sandboxed = _filesystem_series(["unshare", "-m", "--propagation", "private", "sh", "-c", SANDBOX, "sandbox"],
                                       {"OBM_KEEP": keep, "OBM_PRESERVE": " ".join(preserve)})
    finally:
        os.rmdir(keep)
    assert plain[("otel_bare_metal_collector_success", (("collector", "filesystem"),))] == 1
    assert sandboxed == plain, "the same mounts, read-write where the host has them so, and no new errors"
