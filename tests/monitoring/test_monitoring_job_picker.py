"""The dashboards' job and instance pickers list every job that scrapes the exporter: the host
exporters' /metrics jobs and the HDHomeRun fleet jobs that scrape /probe (blackbox style, whose
pages carry only HDHomeRun series), in both naming modes."""

from __future__ import annotations

import json
import re

import pytest

from helpers import fetch, running_exporter, samples
from monitoring_support import MONITORING, VARIANTS, variable_query
from otel_bare_metal.hdhr.simulator import Simulator


def selector(dashboard: dict, name: str) -> str:
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", variable_query(variable), re.S)
    assert m, variable_query(variable)
    return m.group(1)


def matches(selector_text: str, names: set[str]) -> set[str]:
    """The metric names among ``names`` a selector picks (a bare name or {__name__=~"a|b"})."""
    m = re.search(r'__name__\s*=~\s*"([^"]+)"', selector_text)
    if m:
        return {n for n in names if re.fullmatch(m.group(1), n)}
    bare = re.match(r"\s*([A-Za-z_:][\w:]*)", selector_text)
    return {bare.group(1)} & names if bare else set()


@pytest.fixture(scope="module")
def pages() -> dict[tuple[str, str], set[str]]:
    """Metric names on a host exporter's /metrics and on a fleet job's /probe, per naming mode."""
    out = {}
    with Simulator("127.0.0.1", 0, tuners=2) as sim:
        for mode in VARIANTS:
            with running_exporter("--no-collector.hdhomerun", f"--metrics.naming={mode}") as base:
                out[(mode, "metrics")] = {k[0] for k in samples(fetch(base + "/metrics")[2].decode())}
            with running_exporter("--no-collector.cpu", "--no-collector.filesystem", f"--metrics.naming={mode}",
                                  "--hdhomerun.allow-target=127.0.0.0/8:*") as base:
                body = fetch(f"{base}/probe?target={sim.address_text}")[2].decode()
                out[(mode, "probe")] = {k[0] for k in samples(body)}
    return out


@pytest.mark.parametrize("page", ["metrics", "probe"])
@pytest.mark.parametrize("mode", list(VARIANTS))
@pytest.mark.parametrize("variable", ["job", "instance"])
def test_picker_selects_every_kind_of_job(pages, mode, page, variable):
    dashboard = json.loads((MONITORING / VARIANTS[mode]["dashboard"]).read_text())
    names = pages[(mode, page)]
    assert "hdhomerun_up" in pages[(mode, "probe")]  # the probe really answered
    assert matches(selector(dashboard, variable), names), f"{mode} {variable} picker finds no series of a {page} job"
