"""The exporter's own process metrics: the source against a fixture procfs and against psutil
on the real process, every row bound to what its observer gives in both namings, the page,
OTLP, and --web.disable-exporter-metrics."""

from __future__ import annotations

import os
import threading

import psutil
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from helpers import FIXTURES, fetch, promtool_check_metrics, running_exporter, samples
from otel_bare_metal.process import METRICS, SPEC
from otel_bare_metal.procfs import NotRegularFile
from otel_bare_metal.process.source import ProcfsProcessSource, PsutilProcessSource
from otel_bare_metal.registry import Paths
from otel_bare_metal.telemetry import SourceWorker, instrument
from otel_bare_metal.telemetry.naming import instrument_for
from otel_bare_metal.telemetry.provider import meter_provider

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def fake_procfs(tmp_path, comm: str = "we (ird) name", fds: int = 7):
    proc = tmp_path / "proc"
    (proc / "self" / "fd").mkdir(parents=True)
    (proc / "stat").write_text("cpu  1 2 3 4\nbtime 1700000000\nprocesses 5\n")
    # proc(5): pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    #          utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss …
    fields = ["S", 1, 1, 1, 0, -1, 4194560, 10, 0, 0, 0, 3 * TICKS, TICKS // 2, 0, 0, 20, 0, 4, 0,
              250 * TICKS, 123456789, 1000, 18446744073709551615]
    (proc / "self" / "stat").write_text(f"4242 ({comm}) " + " ".join(map(str, fields)) + "\n")
    for n in range(fds):
        (proc / "self" / "fd" / str(n)).write_text("")
    return proc


def test_the_procfs_source_reads_proc5_fields(tmp_path):
    source = ProcfsProcessSource(str(fake_procfs(tmp_path)), clock=lambda: 1700000300.0)
    stat = source.read()
    assert (stat.cpu_user, stat.cpu_system) == (3.0, (TICKS // 2) / TICKS)
    assert (stat.resident_bytes, stat.virtual_bytes, stat.open_fds) == (1000 * PAGE, 123456789, 7)
    assert stat.start_time == 1700000250.0 and stat.uptime == 50.0
    assert stat.build.version and stat.build.runtime_name == "cpython"


def test_a_fifo_planted_in_the_procfs_tree_is_refused_not_waited_on(tmp_path):
    """The source is read on the collecting thread (``nonblocking``), so it must never wait
    on what it opens: a FIFO with no writer is refused at once."""
    proc = fake_procfs(tmp_path)
    source = ProcfsProcessSource(str(proc))
    (proc / "self" / "stat").unlink()
    os.mkfifo(proc / "self" / "stat")
    outcome = []

    def read():
        try:
            source.read()
        except OSError as e:
            outcome.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO must not block"
    assert isinstance(outcome[0], NotRegularFile)
    assert ProcfsProcessSource.nonblocking


def test_the_procfs_source_agrees_with_psutil_on_this_process():
    ours = ProcfsProcessSource().read()
    theirs = psutil.Process()
    with theirs.oneshot():
        times, memory, fds, created = theirs.cpu_times(), theirs.memory_info(), theirs.num_fds(), theirs.create_time()
    assert abs(ours.start_time - created) < 0.02
    assert ours.cpu_user <= times.user + 0.05 and ours.cpu_system <= times.system + 0.05
    assert abs(ours.resident_bytes - memory.rss) < 16 * 1024 * 1024 and ours.virtual_bytes > 0
    assert abs(ours.open_fds - fds) <= 2
    fallback = PsutilProcessSource().read()
    assert abs(fallback.start_time - ours.start_time) < 0.02 and fallback.open_fds is not None


def test_cpu_time_never_goes_backwards():
    source = ProcfsProcessSource()
    before = source.read()
    sum(i * i for i in range(300_000))  # burn a little CPU
    after = source.read()
    assert after.cpu_user + after.cpu_system >= before.cpu_user + before.cpu_system
    assert after.uptime >= before.uptime


def observed(naming: str) -> dict[str, set[tuple[str, ...]]]:
    collector = SourceWorker(SPEC.name, SPEC.source(Paths(), {}))
    reader = InMemoryMetricReader()
    provider = meter_provider(Resource.create({}), [reader])
    try:
        instrument(provider.get_meter("test"), [], self_monitoring=False, naming=naming, unmonitored=[(collector, SPEC)])
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
        collector.close()
    return {m.name: {tuple(sorted(p.attributes)) for p in m.data.data_points}
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_every_row_is_observed_with_its_attributes():
    keys = observed("otel")
    rows = [m for m in METRICS if not m.classic_only]
    assert {m.name for m in rows} == set(keys), "every row observed, a classic-only row not in OTel mode"
    wrong = {m.name: keys[m.name] for m in rows if keys[m.name] != {tuple(sorted(m.attributes))}}
    assert not wrong


def test_every_classic_metric_is_observed_with_its_labels():
    keys = observed("classic")
    expected = {inst.name: tuple(sorted(inst.attributes)) for m in METRICS for inst in (instrument_for(m, c) for c in m.classic)}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
            "process_start_time_seconds", "otel_bare_metal_build_info"} <= set(expected)
    assert set(keys) == set(expected)
    assert not {name: keys[name] for name in expected if keys[name] != {expected[name]}}


FIXTURE_ARGS = (f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}")


@pytest.mark.parametrize("naming,names", [
    ("otel", {"process_cpu_time_seconds_total", "process_memory_usage_bytes", "process_unix_file_descriptors",
              "otel_bare_metal_process_file_descriptor_limit", "otel_bare_metal_process_file_descriptor_utilization_ratio",
              "process_uptime_seconds", "otel_bare_metal_build_info"}),
    ("classic", {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                 "process_open_fds", "process_max_fds", "process_start_time_seconds", "otel_bare_metal_build_info"}),
])
def test_the_page_carries_them_and_the_flag_turns_them_off(naming, names):
    with running_exporter(*FIXTURE_ARGS, f"--metrics.naming={naming}") as base:
        first = fetch(base + "/metrics")[2].decode()
        second = samples(fetch(base + "/metrics")[2].decode())
    assert promtool_check_metrics(first).returncode == 0
    page = samples(first)
    assert names <= {name for name, _ in page}
    cpu = "process_cpu_seconds_total" if naming == "classic" else "process_cpu_time_seconds_total"
    assert sum(v for (n, _), v in second.items() if n == cpu) >= sum(v for (n, _), v in page.items() if n == cpu)
    build = [dict(labels) for name, labels in page if name == "otel_bare_metal_build_info"]
    assert len(build) == 1 and build[0]["version"]
    with running_exporter(*FIXTURE_ARGS, f"--metrics.naming={naming}", "--web.disable-exporter-metrics") as base:
        off = samples(fetch(base + "/metrics")[2].decode())
    left = {name for name, _ in off if name.startswith(("process_", "otel_bare_metal_process", "otel_bare_metal_build"))}
    assert not left and any(name.startswith("otel_bare_metal_collector") or name.startswith("node_scrape") for name, _ in off)


def test_otlp_carries_them_too():
    from otlp_receiver import OTLPReceiver

    with OTLPReceiver() as rx:
        env = {"OTEL_METRICS_EXPORTER": "prometheus,otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": rx.http_endpoint,
               "OTEL_METRIC_EXPORT_INTERVAL": "200"}
        with running_exporter(*FIXTURE_ARGS, env=env):
            assert rx.wait_for(lambda: {"process.cpu.time", "otel_bare_metal.build.info"} <= rx.metric_names(), 30)
        names = rx.metric_names()
    assert {"process.memory.usage", "process.unix.file_descriptor.count", "process.uptime"} <= names


def test_the_source_is_opentelemetry_free():
    import ast
    import inspect

    import otel_bare_metal.process.source as module

    tree = ast.parse(inspect.getsource(module))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] in ("opentelemetry", "prometheus_client")}
