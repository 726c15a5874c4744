"""Bad input everywhere, load, lifecycle and least privilege."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from helpers import FIXTURES, ROOT, fetch, free_port, promtool_check_metrics, samples, stop_process, wait_for_http
from otel_bare_metal.app import App
from otel_bare_metal.collectors.hdhomerun import HDHomeRunOptions
from otel_bare_metal.config import Config
from otel_bare_metal.collectors.filesystem.source import FilesystemSource, StatfsResult, StatfsWatchdog
from otel_bare_metal.procfs import parse_mountinfo, parse_stat
from otel_bare_metal.procfs import CPUStat, MountTable
from otel_bare_metal.telemetry import SourceWorker
from otel_bare_metal.telemetry.resource import build_resource

REAL_STAT = (FIXTURES / "proc" / "stat").read_text()
REAL_MOUNTINFO = (FIXTURES / "proc" / "1" / "mountinfo").read_text()
FUZZ = settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        i = rng.randrange(len(chars) + 1)
        if op == 0 and chars:
            del chars[min(i, len(chars) - 1)]
        elif op == 1:
            chars.insert(i, rng.choice(" \t\n-:/\\0123456789abcx\x00é\udcff"))
        elif op == 2 and chars:
            j = min(i, len(chars) - 1)
            chars[j] = rng.choice(" \n-0x\\")
        else:
            chars[i:i] = list(rng.choice(["cpu", "cpu99999999999999999999 ", " - ", "\\040", "\n\n", "cpu0 1 2 3 4\n"]))
    return "".join(chars)


@FUZZ
@given(st.text())
def test_stat_parser_random_text(text):
    result = parse_stat(text, 100)
    assert isinstance(result, CPUStat)


@FUZZ
@given(st.integers(0, 2**32))
def test_stat_parser_mutated_real_input(seed):
    result = parse_stat(mutate(REAL_STAT, random.Random(seed)), 100)
    assert isinstance(result, CPUStat)
    assert all(c.cpu >= 0 and all(v >= 0 for v in c.modes.values()) for c in result.cpus)


@FUZZ
@given(st.text())
def test_mountinfo_parser_random_text(text):
    assert isinstance(parse_mountinfo(text), MountTable)


@FUZZ
@given(st.integers(0, 2**32))
def test_mountinfo_parser_mutated_real_input(seed):
    table = parse_mountinfo(mutate(REAL_MOUNTINFO, random.Random(seed)))
    assert isinstance(table, MountTable)
    assert len(table.mounts) + len(table.errors) >= 1


def test_odd_bytes_in_mount_points_and_devices_make_valid_labels():
    """Invalid UTF-8, quotes, newlines, backslashes and spaces, escaped the way the kernel escapes them."""
    odd = [
        (r"/mnt/bad\377byte", r"/dev/bad\376"),
        ('/mnt/"quoted"', '/dev/"q"'),
        (r"/mnt/new\012line", "/dev/sdz"),
        (r"/mnt/back\134slash", r"dev\134x"),
        (r"/mnt/tab\011and\040space", "//server/share"),
    ]
    lines = [f"{i + 10} 1 8:{i} / {mp} rw - ext4 {dev} rw" for i, (mp, dev) in enumerate(odd)]
    table = parse_mountinfo("\n".join(lines) + "\n")
    assert not table.errors and len(table.mounts) == len(odd)
    source = FilesystemSource(watchdog=StatfsWatchdog(statfs=lambda p: StatfsResult(1, 10, 5, 5, 1, 1), timeout=1),
                              read_mounts=lambda _: table)
    for naming in ("otel", "classic"):
        config = Config(listen_address=f"127.0.0.1:{free_port()}", naming=naming)
        exporter = App(config, resource=build_resource({}), collectors=[SourceWorker("filesystem", source)]).start()
        try:
            body = fetch(f"http://{config.listen_address[0]}/metrics")[2]
        finally:
            exporter.server.shutdown()
            exporter.provider.shutdown()
        result = promtool_check_metrics(body)
        assert result.returncode == 0 and not result.stdout and not result.stderr, result
        label = "system_filesystem_mountpoint" if naming == "otel" else "mountpoint"
        points = {dict(k[1]).get(label) for k in samples(body.decode()) if dict(k[1]).get(label)}
        assert points == {"/mnt/bad\\xffbyte", '/mnt/"quoted"', "/mnt/new\nline", "/mnt/back\\slash", "/mnt/tab\tand space"}
    source.close()


def test_sixteen_scrapers_twenty_five_rounds_never_tear(tmp_path):
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "stat").write_text("".join(f"cpu{i} {i} 1 2 3 4 5 6 7 8 9\n" for i in range(32)))
    (proc / "1" / "mountinfo").write_text((FIXTURES / "proc" / "1" / "mountinfo").read_text())
    from helpers import running_exporter

    with running_exporter(f"--path.procfs={proc}", f"--path.rootfs={FIXTURES / 'rootfs'}") as base:
        def scraper(_):
            sets = []
            for _ in range(25):
                body = fetch(base + "/metrics")[2].decode()
                keys = [(s.name, tuple(sorted(s.labels.items()))) for f in text_string_to_metric_families(body) for s in f.samples]
                assert len(keys) == len(set(keys)), "duplicate series inside one response"
                sets.append(frozenset(k for k in keys if "duration" not in k[0]))
            return sets

        with ThreadPoolExecutor(16) as pool:
            results = [s for sets in pool.map(scraper, range(16)) for s in sets]
    assert len(results) == 400
    assert len(set(results)) == 1 and len(results[0]) > 32 * 8


def test_sigint_stops_cleanly_and_closes_device_connections():
    from otel_bare_metal.hdhr.simulator import Simulator

    with Simulator("127.0.0.1", 0, tuners=2) as sim:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}",
             f"--hdhomerun.device={sim.address_text}", "--no-collector.filesystem"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True,
        )
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        fetch(f"http://127.0.0.1:{port}/metrics")
        assert sim._conns, "the exporter keeps a connection to the device"
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - start < 5
        deadline = time.monotonic() + 5
        while sim._conns and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sim._conns, "the device connection was closed"


def test_exporter_close_closes_device_clients():
    from otel_bare_metal.hdhr.simulator import Simulator

    with Simulator("127.0.0.1", 0, tuners=1) as sim:
        config = Config(listen_address=f"127.0.0.1:{free_port()}", collectors={"hdhomerun": True},
                        options={"hdhomerun": HDHomeRunOptions(devices=(sim.address_text,))})
        exporter = App(config, resource=build_resource({})).start()
        fetch(f"http://{config.listen_address[0]}/metrics")
        exporter.close()
        deadline = time.monotonic() + 5
        while sim._conns and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sim._conns


NOBODY = 65534
DROP_AND_SERVE = textwrap.dedent('''
    import importlib, os, pkgutil, sys
    # Import everything while we can still read the interpreter's and the checkout's files
    # (either may sit under a directory only root can enter).
    import encodings.idna, prometheus_client.openmetrics.exposition, otel_bare_metal
    for module in pkgutil.walk_packages(otel_bare_metal.__path__, "otel_bare_metal."):
        importlib.import_module(module.name)
    from otel_bare_metal import cli
    os.setgroups([]); os.setgid({uid}); os.setuid({uid})
    assert os.geteuid() == {uid}
    sys.exit(cli.main(sys.argv[1:]))
''')


def test_needs_no_root():
    """/proc/stat, mountinfo and statfs are world-readable: the exporter works as nobody.
    (Privileges are dropped inside the process after imports, because the interpreter may live
    under a directory nobody cannot read.)"""
    if os.geteuid() != 0:
        uid = os.geteuid()  # already unprivileged: the same check holds as ourselves
    else:
        uid = NOBODY
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", DROP_AND_SERVE.replace("{uid}", str(uid)),
                             f"--web.listen-address=127.0.0.1:{port}"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd="/", stderr=subprocess.PIPE, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        s = samples(fetch(f"http://127.0.0.1:{port}/metrics")[2].decode())
    finally:
        stop_process(proc)
    success = {dict(k[1])["collector"]: v for k, v in s.items() if k[0] == "otel_bare_metal_collector_success"}
    assert success == {"cpu": 1.0, "filesystem": 1.0}
    assert any(k[0] == "system_cpu_time_seconds_total" for k in s)
    root = [v for k, v in s.items() if k[0] == "system_filesystem_limit_bytes" and ("system_filesystem_mountpoint", "/") in k[1]]
    assert root and root[0] > 0
