"""End to end: the real command on fixture trees, over HTTP, checked by promtool and a golden file."""

import gzip
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import FIXTURES, ROOT, fetch, free_port, promtool_check_metrics, running_exporter, samples
from otel_bare_metal.app import App
from otel_bare_metal.config import Config
from otel_bare_metal.collectors.filesystem.source import FilesystemSource, StatfsResult, StatfsWatchdog
from otel_bare_metal.procfs import parse_mountinfo
from otel_bare_metal.telemetry import SourceWorker
from otel_bare_metal.telemetry.resource import build_resource

GOLDEN = FIXTURES / "golden" / "fixture-metrics.prom"
FIXTURE_ENV = {"OTEL_RESOURCE_ATTRIBUTES": "host.name=golden-host,service.instance.id=golden"}
FIXTURE_ARGS = (f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}")

# Values that depend on the machine (statfs of the checkout's disk, timings, versions).
_VOLATILE = re.compile(
    r"^((?:system_filesystem_(?:usage_bytes|limit_bytes|utilization_ratio|inodes_usage)|otel_bare_metal_collector_duration_seconds)\{.*\}) \S+$"
)

# The exporter's own process (memory, CPU time, descriptors, uptime).
_OWN_PROCESS = re.compile(r"^((?:process|otel_bare_metal_process)_\w+(?:\{.*\})?) \S+$")


def normalise(text: str) -> str:
    lines = []
    for line in text.splitlines():
        line = _VOLATILE.sub(r"\1 <value>", line)
        line = _OWN_PROCESS.sub(r"\1 <value>", line)
        line = re.sub(r'(telemetry_sdk_version|service_version|process_runtime_version|version|revision)="[^"]*"', r'\1="<version>"', line)
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fixture_exporter():
    with running_exporter(*FIXTURE_ARGS, env=FIXTURE_ENV) as base:
        yield base


def test_golden_exposition(fixture_exporter):
    status, headers, body = fetch(fixture_exporter + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    got = normalise(body.decode())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(got)
    assert got == GOLDEN.read_text(), "exposition changed; if intended, rerun with UPDATE_GOLDEN=1"


def test_fixture_ticks_divided_by_user_hz(fixture_exporter):
    hz = os.sysconf("SC_CLK_TCK")
    s = samples(fetch(fixture_exporter + "/metrics")[2].decode())
    ticks = {}
    for line in (FIXTURES / "proc" / "stat").read_text().splitlines():
        f = line.split()
        if f[0].startswith("cpu") and f[0] != "cpu":
            ticks[f[0][3:]] = [int(x) for x in f[1:]]
    modes = ["user", "nice", "system", "idle", "iowait", "interrupt", "softirq", "steal"]
    for cpu, values in ticks.items():
        for mode, t in zip(modes, values):
            key = ("system_cpu_time_seconds_total", (("cpu_logical_number", cpu), ("cpu_mode", mode)))
            assert s[key] == t / hz, key
        assert s[("system_cpu_guest_time_seconds_total", (("cpu_logical_number", cpu), ("cpu_mode", "user")))] == values[8] / hz
    cpus = {dict(k[1])["cpu_logical_number"] for k in s if k[0] == "system_cpu_time_seconds_total"}
    assert cpus == {"0", "1", "3"}


def test_every_real_fixture_filesystem_once(fixture_exporter):
    s = samples(fetch(fixture_exporter + "/metrics")[2].decode())
    points = sorted(dict(k[1])["system_filesystem_mountpoint"] for k in s if k[0] == "system_filesystem_limit_bytes")
    assert points == ["/", "/data", "/home", "/mnt/ro", "/mnt/with space", "/run"]
    modes = {dict(k[1])["system_filesystem_mountpoint"]: dict(k[1])["system_filesystem_mode"] for k in s if k[0] == "system_filesystem_limit_bytes"}
    assert modes["/mnt/ro"] == "ro" and modes["/data"] == "rw"
    st = os.statvfs(FIXTURES / "rootfs" / "data")
    limit = [v for k, v in s.items() if k[0] == "system_filesystem_limit_bytes" and ("system_filesystem_mountpoint", "/data") in k[1]]
    assert limit == [st.f_blocks * st.f_bsize]


def test_promtool_accepts_the_text_format(fixture_exporter):
    status, headers, body = fetch(fixture_exporter + "/metrics", {"Accept": "text/plain"})
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    result = promtool_check_metrics(body)
    assert result.returncode == 0 and not result.stdout and not result.stderr, result


def test_openmetrics_by_content_negotiation(fixture_exporter):
    """Debian's promtool lints only the text format, so OpenMetrics goes through the strict
    OpenMetrics parser, and must carry the same series as the text format."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

    status, headers, body = fetch(fixture_exporter + "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    families = {f.name: f for f in parse_openmetrics(body.decode())}
    assert families["system_cpu_time_seconds"].type == "counter"
    text = samples(fetch(fixture_exporter + "/metrics")[2].decode())
    om = {(s.name, tuple(sorted(s.labels.items()))) for f in families.values() for s in f.samples}
    cpu = {k for k in text if k[0].startswith("system_cpu_time")}
    assert cpu and cpu <= om


def test_promtool_accepts_this_machines_exposition():
    with running_exporter() as base:
        body = fetch(base + "/metrics")[2]
    result = promtool_check_metrics(body)
    assert result.returncode == 0 and not result.stdout and not result.stderr, result
    assert b'system_filesystem_mountpoint="/"' in body


def test_gzip_landing_page_and_health(fixture_exporter):
    status, headers, body = fetch(fixture_exporter + "/metrics", {"Accept-Encoding": "gzip"})
    assert headers.get("content-encoding") == "gzip"
    assert b"system_cpu_time_seconds_total" in gzip.decompress(body)
    status, headers, body = fetch(fixture_exporter + "/")
    assert status == 200 and b'href="/metrics"' in body
    assert fetch(fixture_exporter + "/healthz")[:3:2] == (200, b"OK\n")
    assert fetch(fixture_exporter + "/nope")[0] == 404


def test_no_scope_labels_by_default_and_on_request():
    with running_exporter(*FIXTURE_ARGS, "--no-collector.filesystem") as base:
        assert b"otel_scope_name" not in fetch(base + "/metrics")[2]
    with running_exporter(*FIXTURE_ARGS, "--no-collector.filesystem", env={"OTEL_BARE_METAL_METRICS_SCOPE_LABELS": "true"}) as base:
        assert b'otel_scope_name="otel_bare_metal"' in fetch(base + "/metrics")[2]


def test_resource_attributes_in_target_info(fixture_exporter):
    s = samples(fetch(fixture_exporter + "/metrics")[2].decode())
    [labels] = [dict(k[1]) for k in s if k[0] == "target_info"]
    assert labels["service_name"] == "otel-bare-metal"
    assert labels["host_name"] == "golden-host"


def test_twenty_concurrent_scrapes_get_identical_complete_series_sets(tmp_path):
    """A 64-CPU tree makes each collection long enough for unserialised scrapes to tear."""
    proc = write_proc(tmp_path, 64)
    with running_exporter(f"--path.procfs={proc}", f"--path.rootfs={FIXTURES / 'rootfs'}") as base:
        barrier = threading.Barrier(20)

        def scrape(_):
            barrier.wait(timeout=30)
            return fetch(base + "/metrics")[2].decode()

        with ThreadPoolExecutor(20) as pool:
            bodies = list(pool.map(scrape, range(20)))
    from prometheus_client.parser import text_string_to_metric_families

    sets = []
    for body in bodies:
        names = [(s.name, tuple(sorted(s.labels.items()))) for f in text_string_to_metric_families(body) for s in f.samples]
        assert len(names) == len(set(names)), "a series repeated inside one response"
        sets.append(frozenset(names))
    assert len(set(sets)) == 1 and len(sets[0]) > 64 * 8


def write_proc(tmp_path, cpus: int):
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "stat").write_text("cpu 0 0 0 0\n" + "".join(f"cpu{i} {i} 1 2 3 4 5 6 7 8 9\n" for i in range(cpus)))
    (proc / "1" / "mountinfo").write_text("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    return proc


def test_256_cpus_never_overflow(tmp_path):
    proc = write_proc(tmp_path, 256)
    with running_exporter(f"--path.procfs={proc}", "--no-collector.filesystem") as base:
        text = fetch(base + "/metrics")[2].decode()
    s = samples(text)
    cpu_series = [k for k in s if k[0] == "system_cpu_time_seconds_total"]
    assert len(cpu_series) == 256 * 8
    assert "otel_metric_overflow" not in text


def test_hung_mount_never_delays_a_scrape_beyond_the_timeout():
    release = threading.Event()

    def statfs(path):
        if path == "/nfs":
            release.wait(60)
        return StatfsResult(4096, 10, 5, 4, 3, 2)

    table = parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:40 / /nfs rw - nfs srv:/x rw\n")
    timeout = 0.5
    source = FilesystemSource(watchdog=StatfsWatchdog(statfs=statfs, timeout=timeout), read_mounts=lambda _: table)
    config = Config(listen_address=f"127.0.0.1:{free_port()}")
    exporter = App(config, resource=build_resource({}), collectors=[SourceWorker("filesystem", source)]).start()
    url = f"http://{config.listen_address[0]}/metrics"
    try:
        for scrape in range(3):
            start = time.monotonic()
            s = samples(fetch(url)[2].decode())
            assert time.monotonic() - start < timeout + 0.5, f"scrape {scrape} waited for the hung mount"
            by_mount = {dict(k[1])["system_filesystem_mountpoint"]: v for k, v in s.items() if k[0] == "system_filesystem_timeout"}
            assert by_mount == {"/": 0.0, "/nfs": 1.0}
            assert any(k[0] == "system_filesystem_limit_bytes" for k in s), "the healthy mount still exports"
    finally:
        release.set()
        exporter.close()


# ----------------------------------------------------------------------------- command line

def run_cli(*args, env=None, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "otel_bare_metal", *args],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--bogus"], "unrecognized arguments"),
        (["--path.procfs=/nonexistent"], "--path.procfs"),
        (["--path.procfs", str(FIXTURES)], "no stat file"),
        (["--web.listen-address=nonsense"], "listen address"),
        (["--collector.filesystem.mount-points-exclude=(["], "regex"),
        (["--collector.filesystem.mount-timeout=-1"], "positive"),
        (["--log.level=loud"], "invalid choice"),
        (["statfs", "/nonexistent/path"], "No such file"),
        (["cpustat", "--path.procfs=/nonexistent"], "cannot read"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_bad_environment_value_is_one_line():
    result = run_cli(env={"OTEL_BARE_METAL_COLLECTOR_CPU": "maybe"})
    assert result.returncode == 2 and "OTEL_BARE_METAL_COLLECTOR_CPU" in result.stderr


def test_port_in_use_is_one_line_and_exit_1():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run_cli(f"--web.listen-address=127.0.0.1:{port}", "--no-collector.filesystem")
    assert result.returncode == 1
    assert "cannot listen" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_environment_configures_flags():
    port = free_port()
    env = {"OTEL_BARE_METAL_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}", "OTEL_BARE_METAL_WEB_TELEMETRY_PATH": "/m",
           "OTEL_BARE_METAL_PATH_PROCFS": str(FIXTURES / "proc"), "OTEL_BARE_METAL_COLLECTOR_FILESYSTEM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "otel_bare_metal"], env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stderr=subprocess.PIPE, text=True)
    try:
        from helpers import wait_for_http

        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        body = fetch(f"http://127.0.0.1:{port}/m")[2].decode()
        assert 'cpu_logical_number="3"' in body and "system_filesystem" not in body
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0, "SIGTERM exits 0"


def test_cpustat_and_statfs_tools():
    result = run_cli("cpustat", f"--path.procfs={FIXTURES / 'proc'}")
    hz = os.sysconf("SC_CLK_TCK")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == f"cpu0: user={1132 / hz:.2f}s system={1441 / hz:.2f}s idle={11311718 / hz:.2f}s"
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["cpu0", "cpu1", "cpu3"]
    result = run_cli("statfs", "/")
    st = os.statvfs("/")
    assert result.returncode == 0 and result.stdout.startswith("/ (")
    assert f"{st.f_files} files" in result.stdout
