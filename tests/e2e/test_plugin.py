"""The example collector plugin (examples/cpufreq), installed as its own package, end to end.

scripts/test installs it into the test venv with pip, so the exporter finds it the way a user's
exporter would: through the ``otel_bare_metal.collectors`` entry-point group.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys

import pytest

from helpers import FIXTURES, ROOT, fetch, free_port, promtool_check_metrics, running_exporter, samples, wait_for_http
from otlp_receiver import OTLPReceiver

SYS = FIXTURES / "sys"
BASE = (f"--path.procfs={FIXTURES / 'proc'}", f"--path.sysfs={SYS}", "--no-collector.filesystem")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("otel_bare_metal_cpufreq") is None,
                                reason="the example plugin is not installed: run ./scripts/test (pip install ./examples/cpufreq)")


def scrape(base: str) -> tuple[str, dict]:
    status, _, body = fetch(base + "/metrics")
    assert status == 200
    text = body.decode()
    return text, samples(text)


def test_its_flag_turns_it_on_and_its_metrics_are_on_the_page_promtool_clean():
    with running_exporter(*BASE, "--collector.cpufreq") as base:
        text, s = scrape(base)
    assert s[("system_cpu_frequency_hertz", (("cpu_logical_number", "0"),))] == 2.4e9
    assert s[("system_cpu_frequency_hertz", (("cpu_logical_number", "1"),))] == 1.2e9
    assert s[("system_cpu_frequency_scaling_min_hertz", (("cpu_logical_number", "1"),))] == 0.8e9
    assert s[("system_cpu_frequency_scaling_max_hertz", (("cpu_logical_number", "0"),))] == 3.6e9
    assert not any(k[0] == "system_cpu_frequency_hertz" and ("cpu_logical_number", "3") in k[1] for k in s), \
        "cpu3 has no cpufreq directory: no series"
    assert s[("otel_bare_metal_collector_success", (("collector", "cpufreq"),))] == 1
    assert s[("otel_bare_metal_collector_success", (("collector", "cpu"),))] == 1
    check = promtool_check_metrics(text)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_off_by_default_on_from_the_environment():
    with running_exporter(*BASE) as base:
        text, _ = scrape(base)
        assert "system_cpu_frequency" not in text and 'collector="cpufreq"' not in text
    with running_exporter(*BASE, env={"OTEL_BARE_METAL_COLLECTOR_CPUFREQ": "true"}) as base:
        _, s = scrape(base)
        assert s[("system_cpu_frequency_hertz", (("cpu_logical_number", "0"),))] == 2.4e9
    with running_exporter(*BASE, "--collector.disable-defaults", "--collector.cpufreq") as base:
        text, s = scrape(base)
        assert s[("system_cpu_frequency_hertz", (("cpu_logical_number", "1"),))] == 1.2e9
        assert "system_cpu_time" not in text


def test_classic_naming_gives_node_exporters_names():
    with running_exporter(*BASE, "--collector.cpufreq", "--metrics.naming=classic") as base:
        text, s = scrape(base)
    assert s[("node_cpu_scaling_frequency_hertz", (("cpu", "0"),))] == 2.4e9
    assert s[("node_cpu_scaling_frequency_max_hertz", (("cpu", "1"),))] == 3.6e9
    assert s[("node_scrape_collector_success", (("collector", "cpufreq"),))] == 1
    check = promtool_check_metrics(text)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_its_broken_sysfs_fails_only_its_own_collector(tmp_path):
    """A figure the plugin's source cannot parse: its success is 0, the rest of its figures and
    every other collector stay."""
    sys_copy = tmp_path / "sys"
    shutil.copytree(SYS, sys_copy)
    (sys_copy / "devices/system/cpu/cpu1/cpufreq/scaling_cur_freq").write_text("fast\n")
    with running_exporter(f"--path.procfs={FIXTURES / 'proc'}", f"--path.sysfs={sys_copy}", "--no-collector.filesystem",
                          "--collector.cpufreq") as base:
        _, s = scrape(base)
    assert s[("otel_bare_metal_collector_success", (("collector", "cpufreq"),))] == 0
    assert s[("otel_bare_metal_collector_success", (("collector", "cpu"),))] == 1
    assert s[("system_cpu_frequency_hertz", (("cpu_logical_number", "0"),))] == 2.4e9
    assert ("system_cpu_frequency_hertz", (("cpu_logical_number", "1"),)) not in s
    assert s[("system_cpu_frequency_scaling_max_hertz", (("cpu_logical_number", "1"),))] == 3.6e9


def test_its_metrics_arrive_over_otlp():
    with OTLPReceiver() as rx:
        port = free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}", *BASE, "--collector.cpufreq"],
            env={**clean, "PYTHONPATH": str(ROOT), "OTEL_METRICS_EXPORTER": "prometheus,otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": rx.http_endpoint,
                 "OTEL_METRIC_EXPORT_INTERVAL": "300", "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
            assert rx.wait_for(lambda: "system.cpu.frequency" in {m.name for m in rx.metrics()}, 15)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        (freq,) = [m for m in rx.metrics() if m.name == "system.cpu.frequency"][-1:]
        assert freq.unit == "Hz" and freq.kind == "gauge"
        assert freq.value(**{"cpu.logical_number": 0}) == 2.4e9


def test_a_plugin_that_fails_to_import_is_logged_and_skipped(tmp_path):
    """A real distribution on the path whose entry point names a module that does not exist."""
    dist = tmp_path / "broken_collector-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-collector\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[otel_bare_metal.collectors]\nbroken = no_such_module_here:COLLECTOR\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}", *BASE, "--collector.cpufreq"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        status, _, body = fetch(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"system_cpu_time_seconds_total" in body and b"system_cpu_frequency_hertz" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    log = proc.stderr.read()
    assert 'msg="collector plugin skipped" plugin=broken distribution=broken-collector' in log, log
    assert "no_such_module_here" in log, log


def test_docgen_renders_the_installed_plugins_section():
    out = subprocess.run([sys.executable, "-m", "otel_bare_metal.docgen", "--collector", "cpufreq"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("## CPU frequency")
    assert "| `system.cpu.frequency` | `system_cpu_frequency_hertz` | `node_cpu_scaling_frequency_hertz{cpu}` | gauge | `Hz` |" in out.stdout
