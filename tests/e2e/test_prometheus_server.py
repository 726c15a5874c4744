"""A real Prometheus server (Debian's prometheus) scrapes the exporter on loopback."""

import json
import shutil
import subprocess
import time
import urllib.parse

import pytest

from helpers import FIXTURES, fetch, free_port, running_exporter, wait_for_http

pytestmark = pytest.mark.peers  # main interpreter only (scripts/test)

PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: otel-bare-metal
    static_configs:
      - targets: ["{target}"]
        labels:
          site: test
    relabel_configs:
      # the relabelling users write: a stable instance name instead of host:port
      - source_labels: [__address__]
        regex: "127\\\\.0\\\\.0\\\\.1:.*"
        target_label: instance
        replacement: fixture-host
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "otel_bare_metal_collector_duration_seconds"
        action: drop
"""


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    assert path, "prometheus not found: install Debian's prometheus package (scripts/test does)"
    return path


@pytest.fixture
def prometheus(tmp_path):
    """Start Prometheus scraping a given target; yield a query function."""
    procs = []

    def start(target: str, template: str = PROMETHEUS_CONFIG, **fields):
        config = tmp_path / "prometheus.yml"
        config.write_text(template.format(target=target, **fields))
        check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        port = free_port()
        proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/-/ready", timeout=30, proc=proc)
        # /-/ready answers 503 until the TSDB is open: wait for the 200, not just for an answer.
        deadline = time.monotonic() + 60
        while fetch(base + "/-/ready")[0] != 200:
            assert time.monotonic() < deadline, "Prometheus did not become ready within 60 s"
            time.sleep(0.1)

        def query(expr: str):
            url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            status, _, body = fetch(url)
            assert status == 200, body
            return json.loads(body)["data"]["result"]

        return query

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=15)


def poll(query, expr, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    result = []
    while time.monotonic() < deadline:
        result = query(expr)
        if predicate(result):
            return result
        time.sleep(0.5)
    raise AssertionError(f"{expr} never satisfied the condition; last result {result}")


def test_prometheus_scrapes_cpu_series_with_relabelling(prometheus):
    with running_exporter(f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}") as base:
        query = prometheus(base.removeprefix("http://"))
        up = poll(query, 'up{job="otel-bare-metal"}', lambda r: r and r[0]["value"][1] == "1")
        assert up[0]["metric"]["instance"] == "fixture-host"
        cpu = poll(query, 'system_cpu_time_seconds_total{cpu_mode="user"}', lambda r: len(r) == 3)
        assert sorted(r["metric"]["cpu_logical_number"] for r in cpu) == ["0", "1", "3"]
        assert all(r["metric"]["instance"] == "fixture-host" and r["metric"]["site"] == "test" for r in cpu)
        poll(query, "system_filesystem_limit_bytes",
             lambda r: {x["metric"]["system_filesystem_mountpoint"] for x in r} >= {"/", "/data", "/mnt/with space"})
        poll(query, 'otel_bare_metal_collector_success{collector="cpu"}', lambda r: r and r[0]["value"][1] == "1")
        assert query("otel_bare_metal_collector_duration_seconds") == [], "metric relabelling dropped it"


# The relabelling the README documents (blackbox_exporter style).
PROBE_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: hdhomerun
    metrics_path: /probe
    static_configs:
      - targets: [{tuners}]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {target}
"""


def test_prometheus_probes_tuners_through_the_exporter(prometheus):
    from otel_bare_metal.hdhr.simulator import Simulator

    with Simulator("127.0.0.1", 0, tuners=2) as a, Simulator("127.0.0.1", 0, tuners=3) as b:
        tuners = ", ".join(f'"{s.address_text}"' for s in (a, b))
        with running_exporter("--no-collector.filesystem", "--hdhomerun.allow-target=127.0.0.0/8:*") as base:
            query = prometheus(base.removeprefix("http://"), PROBE_CONFIG, tuners=tuners)
            up = poll(query, 'up{job="hdhomerun"}', lambda r: len(r) == 2 and all(x["value"][1] == "1" for x in r))
            assert {r["metric"]["instance"] for r in up} == {a.address_text, b.address_text}
            ss = poll(query, "hdhomerun_tuner_signal_strength_ratio", lambda r: len(r) == 5)
            per_instance = {}
            for r in ss:
                per_instance.setdefault(r["metric"]["instance"], set()).add(r["metric"]["hdhomerun_tuner"])
            assert per_instance == {a.address_text: {"0", "1"}, b.address_text: {"0", "1", "2"}}
            assert all(r["metric"]["hdhomerun_device"] == r["metric"]["instance"] for r in ss)
