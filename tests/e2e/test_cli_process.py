"""The real ``otel-bare-metal`` process: a node_exporter unit's command line starts it, SIGHUP never
ends it, and nothing at start-up prints a traceback."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time

import bcrypt
import pytest

from helpers import FIXTURES, ROOT, fetch, free_port, samples, stop_process, wait_for_http
from logfmt_strict import parse_logfmt


def names(url: str) -> set[str]:
    status, _, body = fetch(url)
    assert status == 200
    return {name for name, _ in samples(body.decode())}


class Process:
    """The exporter with its stderr read line by line on a thread."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "otel_bare_metal", *args],
                                     env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def records(self) -> list[dict]:
        return [dict(parse_logfmt(line)) for line in list(self.lines)]

    def wait_for_log(self, predicate, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.records():
                if predicate(record):
                    return record
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no such log line; got {self.lines}")

    def stop(self) -> int:
        stop_process(self.proc)
        self._reader.join(5)
        return self.proc.returncode


def node_exporter_unit_args(port: int) -> list[str]:
    """ExecStart flags as node_exporter 1.12 units carry them (paths pointed at the fixtures)."""
    return [
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.telemetry-path=/metrics",
        "--web.max-requests=40",
        "--web.disable-exporter-metrics",
        "--log.level=INFO",
        "--log.format=logfmt",
        f"--path.procfs={FIXTURES / 'proc'}",
        f"--path.sysfs={FIXTURES / 'sys'}",
        f"--path.rootfs={FIXTURES / 'rootfs'}",
        "--collector.cpu",
        "--no-collector.cpu.guest",
        "--collector.filesystem",
        "--collector.filesystem.ignored-mount-points=^/(dev|proc|sys|var/lib/docker/.+)($|/)",
        "--collector.filesystem.ignored-fs-types=^(autofs|proc|sysfs|tmpfs)$",
        "--collector.filesystem.mount-timeout=5s",
        "--no-collector.wifi",
        "--no-collector.hwmon",
    ]


def test_a_node_exporter_unit_command_line_starts_the_exporter():
    port = free_port()
    p = Process(*node_exporter_unit_args(port))
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=p.proc)
        families = names(f"http://127.0.0.1:{port}/metrics")
        assert "system_cpu_time_seconds_total" in families
        assert "system_cpu_guest_time_seconds_total" not in families  # --no-collector.cpu.guest
        assert "system_filesystem_usage_bytes" in families
        warnings = [r for r in p.records() if r["level"].lower() == "warn"]
        deprecated = {r.get("flag") for r in warnings if "deprecated" in r["msg"]}
        assert deprecated == {"--collector.filesystem.ignored-mount-points", "--collector.filesystem.ignored-fs-types"}
        assert {r.get("flag") for r in warnings} >= {"--no-collector.wifi", "--no-collector.hwmon"}
    finally:
        assert p.stop() == 0


@pytest.mark.peers  # the Go-built node_exporter: main interpreter only (scripts/test)
def test_node_exporter_takes_the_same_line_and_both_export_the_same_cpu_families():
    """The line above is node_exporter's own syntax: the real node_exporter 1.12 starts with it, and
    with classic naming ours exports the same cpu families (no guest time) and no exporter metrics."""
    from collector_support import go_peer

    port = free_port()
    theirs = subprocess.Popen([go_peer("node_exporter"), *node_exporter_unit_args(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/metrics", proc=theirs)
        their_names = names(f"http://127.0.0.1:{port}/metrics")
    finally:
        stop_process(theirs)
    port = free_port()
    p = Process(*node_exporter_unit_args(port), env={"OTEL_BARE_METAL_METRICS_NAMING": "classic"})
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=p.proc)
        our_names = names(f"http://127.0.0.1:{port}/metrics")
    finally:
        assert p.stop() == 0
    cpu = {n for n in their_names if n.startswith("node_cpu_")}
    assert "node_cpu_seconds_total" in cpu and "node_cpu_guest_seconds_total" not in cpu
    assert {n for n in our_names if n.startswith("node_cpu_")} == cpu
    assert not {n for n in their_names | our_names if n.startswith(("process_", "go_", "promhttp_"))}


def test_guest_time_is_exported_unless_turned_off():
    port = free_port()
    with_guest = [a for a in node_exporter_unit_args(port) if a != "--no-collector.cpu.guest"]
    p = Process(*with_guest)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=p.proc)
        assert "system_cpu_guest_time_seconds_total" in names(f"http://127.0.0.1:{port}/metrics")
    finally:
        p.stop()


def test_sighup_without_a_web_config_never_ends_the_process():
    port = free_port()
    p = Process(f"--web.listen-address=127.0.0.1:{port}", "--no-collector.filesystem", f"--path.procfs={FIXTURES / 'proc'}")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=p.proc)
        for _ in range(3):
            p.proc.send_signal(signal.SIGHUP)
            p.wait_for_log(lambda r: "nothing to reload" in r["msg"] or "no web config" in r["msg"])
        assert p.proc.poll() is None
        assert fetch(f"http://127.0.0.1:{port}/metrics")[0] == 200
    finally:
        assert p.stop() == 0


def _auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _write_users(path, password: str) -> None:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"basic_auth_users:\n  alice: {hashed}\n")
    os.replace(tmp, path)  # atomically, as the README asks


def test_sighup_reloads_the_web_config(tmp_path):
    web = tmp_path / "web.yml"
    _write_users(web, "first")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    p = Process(f"--web.listen-address=127.0.0.1:{port}", "--no-collector.filesystem", f"--path.procfs={FIXTURES / 'proc'}",
                f"--web.config.file={web}")
    try:
        wait_for_http(base + "/healthz", proc=p.proc)
        assert fetch(base + "/metrics", _auth("alice", "first"))[0] == 200
        _write_users(web, "second")
        p.proc.send_signal(signal.SIGHUP)
        p.wait_for_log(lambda r: "reload" in r["msg"] and r["level"].lower() == "info")
        assert p.proc.poll() is None
        assert fetch(base + "/metrics", _auth("alice", "second"))[0] == 200
        assert fetch(base + "/metrics", _auth("alice", "first"))[0] == 401
    finally:
        assert p.stop() == 0


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{free_port()}",
                           "--no-collector.filesystem", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("case", ["nul", "directory", "nested"])
def test_a_broken_web_config_at_start_up_is_one_line_and_exit_1(case, tmp_path):
    if case == "nul":  # a path inside the file (no NUL byte can come through argv or the environment)
        web = tmp_path / "web.yml"
        web.write_text('tls_server_config:\n  cert_file: "/etc/ssl/a\\0b.crt"\n  key_file: "/etc/ssl/a\\0b.key"\n')
        path = str(web)
    elif case == "directory":  # cannot be read as a file
        path = str(tmp_path)
    else:
        nested = tmp_path / "web.yml"
        nested.write_text("tls_server_config: " + "[" * 50_000 + "]" * 50_000 + "\n")
        path = str(nested)
    result = _run(f"--web.config.file={path}")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert dict(parse_logfmt(line))["level"].lower() == "error"


def test_help_and_version_from_the_command():
    result = _run("--help")
    assert result.returncode == 0 and "(default: /metrics)" in " ".join(result.stdout.split())
    assert "--timeout-offset DURATION" in result.stdout and "__" not in result.stdout
    result = _run("--version")
    assert result.returncode == 0 and "python version" in result.stdout and "platform" in result.stdout


@pytest.mark.parametrize("var,value", [("OTEL_BARE_METAL_LOG_FORMAT", "text"), ("OTEL_BARE_METAL_METRICS_NAMING", "prom"),
                                       ("OTEL_BARE_METAL_LOG_LEVEL", "verbose"), ("OTEL_BARE_METAL_WEB_MAX_REQUESTS", "x")])
def test_a_bad_environment_value_is_one_line_and_exit_2(var, value):
    result = subprocess.run([sys.executable, "-m", "otel_bare_metal"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT), var: value})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert var in line


def test_an_upper_case_log_level_in_the_environment_starts_the_exporter():
    port = free_port()
    p = Process(f"--web.listen-address=127.0.0.1:{port}", "--no-collector.filesystem", f"--path.procfs={FIXTURES / 'proc'}",
                env={"OTEL_BARE_METAL_LOG_LEVEL": "DEBUG"})
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=p.proc)
        assert fetch(f"http://127.0.0.1:{port}/metrics")[0] == 200
    finally:
        assert p.stop() == 0
