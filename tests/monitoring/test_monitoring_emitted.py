"""Alert rules and dashboard panels query only metrics a collector really emits.

The other monitoring tests check names against the definitions table; this one checks them
against what the real exporter puts on ``/metrics`` in a fixture run, in both naming modes:
the fixture /proc and rootfs trees, and two simulated HDHomeRun devices (one with a CableCARD).
Renaming an observer key, dropping a metric from a collector or a typo in a query makes a
rule or panel query something nothing emits, and this fails.
"""

from __future__ import annotations

import json

import pytest
import yaml

from helpers import FIXTURES, fetch, running_exporter
from monitoring_support import MONITORING, PROMETHEUS_SERIES, VARIANTS, grafana_query_names, promql_metric_names
from otel_bare_metal.hdhr.simulator import Simulator


def emitted(naming: str) -> set[str]:
    """Every sample name on /metrics in a fixture run (and the metric family names)."""
    from prometheus_client.parser import text_string_to_metric_families

    with Simulator("127.0.0.1", 0, tuners=2) as plain, Simulator("127.0.0.1", 0, tuners=2, cablecard=True) as cc:
        with running_exporter(f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}",
                              f"--hdhomerun.device={plain.address_text}", f"--hdhomerun.device={cc.address_text}",
                              f"--metrics.naming={naming}") as base:
            status, _, body = fetch(base + "/metrics")
    assert status == 200
    names = set()
    for family in text_string_to_metric_families(body.decode()):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def walk_queries(node) -> tuple[list[str], list[str]]:
    """(PromQL expressions, Grafana variable queries) anywhere in a dashboard."""
    exprs, queries = [], []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                exprs.append(value)
            elif key == "query" and isinstance(value, str):
                queries.append(value)
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                queries.append(value["query"])
            else:
                e, q = walk_queries(value)
                exprs += e
                queries += q
    elif isinstance(node, list):
        for item in node:
            e, q = walk_queries(item)
            exprs += e
            queries += q
    return exprs, queries


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request):
    return request.param, emitted(request.param) | PROMETHEUS_SERIES


def test_alert_rules_use_only_emitted_metrics(variant):
    naming, names = variant
    rules = yaml.safe_load((MONITORING / VARIANTS[naming]["alerts"]).read_text())
    used = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in promql_metric_names(rule["expr"]):
                used.setdefault(name, rule.get("alert") or rule.get("record"))
    assert used, "no metric found in the rules: the scanner is broken"
    missing = {name: rule for name, rule in used.items() if name not in names}
    assert not missing, f"{naming} rules query metrics nothing emits in a fixture run: {missing}"


def test_dashboard_panels_use_only_emitted_metrics(variant):
    naming, names = variant
    dashboard = json.loads((MONITORING / VARIANTS[naming]["dashboard"]).read_text())
    exprs, queries = walk_queries(dashboard)
    used = set().union(*(promql_metric_names(e) for e in exprs), *(grafana_query_names(q) for q in queries))
    assert used, "no metric found in the dashboard: the scanner is broken"
    missing = sorted(used - names)
    assert not missing, f"{naming} dashboard queries metrics nothing emits in a fixture run: {missing}"


def test_a_metric_nothing_emits_is_caught():
    """The check can fail: a renamed metric in an expression is not among the emitted names."""
    names = emitted("otel") | PROMETHEUS_SERIES
    assert "hdhomerun_tuner_stream_stop_reason" in names
    assert not promql_metric_names("max by (device) (hdhomerun_tuner_stop_reason_renamed) > 0") <= names
