"""A plugin gets exactly the names a built-in collector gets: the `_ratio` suffix of a unit-`1`
gauge, a `prometheus=` override and its classic names, on /metrics and in its docs section.

The plugin is a real distribution on the exporter's path (a dist-info with an entry point in
``otel_bare_metal.collectors``), loaded by the real ``otel-bare-metal`` process; the names on
its page must be the ones ``python -m otel_bare_metal.docgen --collector demo`` publishes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from helpers import FIXTURES, ROOT, fetch, promtool_check_metrics, running_exporter, samples

PLUGIN = '''
from opentelemetry.metrics import Observation

from otel_bare_metal.registry import CollectorSpec
from otel_bare_metal.telemetry.definitions import Classic, Kind, Metric

UNIT = ("demo.unit",)
CLASSIC_UNIT = {"demo.unit": "unit"}

BUSY = Metric("demo.busy", Kind.GAUGE, "1", "Fraction of the time the unit was busy.", UNIT, "demo",
              classic=(Classic("demo_busy_fraction", CLASSIC_UNIT, "Busy fraction (classic)."),))
QUEUE = Metric("demo.queue.count", Kind.UPDOWN, "{job}", "Jobs waiting.", UNIT, "demo", prometheus="demo_queue_jobs",
               classic=(Classic("demo_queue_length", CLASSIC_UNIT, "Jobs waiting (classic)."),))
DONE = Metric("demo.jobs", Kind.COUNTER, "{job}", "Jobs done.", UNIT, "demo",
              classic=(Classic("demo_jobs_done_total", CLASSIC_UNIT, "Jobs done (classic)."),))


class Source:
    def read(self):
        return {"a": (0.25, 3, 40), "b": (1.0, 0, 7)}


class Observers:
    def __init__(self, worker):
        self.worker = worker

    def _field(self, index):
        def observe():
            units = self.worker.result or {}
            return [Observation(values[index], {"demo.unit": unit}) for unit, values in units.items()]
        return observe

    def observers(self):
        return {BUSY: self._field(0), QUEUE: self._field(1), DONE: self._field(2)}


COLLECTOR = CollectorSpec("demo", source=lambda paths, options: Source(), observers=Observers,
                          metrics=(BUSY, QUEUE, DONE), title="Demo (`--collector.demo`)")
'''

# The names the rows must give, whatever path they take.
OTEL_NAMES = {"demo.busy": "demo_busy_ratio", "demo.queue.count": "demo_queue_jobs", "demo.jobs": "demo_jobs_total"}
CLASSIC_NAMES = {"demo.busy": "demo_busy_fraction", "demo.queue.count": "demo_queue_length",
                 "demo.jobs": "demo_jobs_done_total"}


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin")
    (path / "otel_bare_metal_demo.py").write_text(PLUGIN)
    dist = path / "otel_bare_metal_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: otel-bare-metal-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[otel_bare_metal.collectors]\ndemo = otel_bare_metal_demo:COLLECTOR\n")
    return path


def env(plugin_path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(ROOT), str(plugin_path)])}


def documented(plugin_path) -> dict[str, tuple[str, str]]:
    """instrument → (Prometheus name, classic name) from the plugin's docs section."""
    out = subprocess.run([sys.executable, "-m", "otel_bare_metal.docgen", "--collector", "demo"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, **env(plugin_path)})
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 7 and cells[0].startswith("`demo."):
            classic = re.match(r"`([a-z_]+)", cells[2])
            rows[cells[0].strip("`")] = (cells[1].strip("`"), classic.group(1) if classic else "")
    return rows


def page(plugin_path, *args: str) -> str:
    with running_exporter(f"--path.procfs={FIXTURES / 'proc'}", "--collector.disable-defaults", "--collector.demo", *args,
                          env=env(plugin_path)) as base:
        status, _, body = fetch(base + "/metrics")
    assert status == 200
    text = body.decode()
    check = promtool_check_metrics(text)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
    return text


def families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_metrics_page_shows_the_ratio_suffix_and_the_override_the_docs_publish(plugin_path):
    docs = documented(plugin_path)
    assert {name: prom for name, (prom, _) in docs.items()} == OTEL_NAMES
    text = page(plugin_path)
    s = samples(text)
    assert s[("demo_busy_ratio", (("demo_unit", "a"),))] == 0.25
    assert s[("demo_queue_jobs", (("demo_unit", "a"),))] == 3
    assert s[("demo_jobs_total", (("demo_unit", "b"),))] == 7
    # every documented name is a family on the page; no raw translation leaks beside it
    demo = {f for f in families(text) if f.startswith("demo_")}
    assert demo == set(OTEL_NAMES.values())
    assert "demo_busy " not in text and "demo_queue_count" not in text


def test_classic_names_on_the_page_are_the_documented_ones(plugin_path):
    docs = documented(plugin_path)
    assert {name: classic for name, (_, classic) in docs.items()} == CLASSIC_NAMES
    text = page(plugin_path, "--metrics.naming=classic")
    assert {f for f in families(text) if f.startswith("demo_")} == set(CLASSIC_NAMES.values())
    s = samples(text)
    assert s[("demo_busy_fraction", (("unit", "a"),))] == 0.25
    assert s[("demo_queue_length", (("unit", "b"),))] == 0
    assert s[("demo_jobs_done_total", (("unit", "a"),))] == 40
    assert s[("node_scrape_collector_success", (("collector", "demo"),))] == 1
