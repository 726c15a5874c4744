"""monitoring/alerts.yml: the alerts operators need exist, are well-formed, and use only metrics
the exporter exports (promtool and the firing/silent cases: test_monitoring_variants.py)."""

from __future__ import annotations

import re

import pytest

from monitoring_support import all_rules, promql_metric_names

REQUIRED = {
    "filesystem nearly full": r"FilesystemNearlyFull",
    "filesystem predicted full": r"FilesystemPredictedFull",
    "inodes nearly exhausted": r"Inodes",
    "hung mount": r"MountHung",
    "erroring mount": r"MountError",
    "read-only remount": r"ReadOnly",
    "collector failing": r"CollectorFailing",
    "HDHomeRun down": r"HDHomeRunDown",
    "weak signal": r"WeakSignal",
    "falling signal quality": r"SignalQualityFalling",
    "transport/CRC errors": r"StreamErrors",
    "CPU saturated": r"CPUSaturated",
    "exporter down": r"ExporterDown",
    "pushing exporter gone": r"ExporterAbsent",
}


@pytest.mark.parametrize("what,pattern", REQUIRED.items(), ids=list(REQUIRED))
def test_required_alert_exists(alerts, what, pattern):
    assert [r["alert"] for r in all_rules(alerts) if re.search(pattern, r.get("alert", ""))], what


def test_rules_are_well_formed(alerts):
    names = [r["alert"] for r in all_rules(alerts)]
    assert len(names) == len(set(names))
    for rule in all_rules(alerts):
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_rules_use_only_exported_metrics(alerts, exported_names):
    for rule in all_rules(alerts):
        used = promql_metric_names(rule["expr"])
        assert used, f"{rule['alert']}: no metric found in its expression"
        assert used <= exported_names, f"{rule['alert']} uses {sorted(used - exported_names)}, which the exporter does not export"


def test_unit_tests_feed_only_exported_metrics(alert_tests, exported_names):
    for test in alert_tests["tests"]:
        for series in test["input_series"]:
            name = re.match(r"[A-Za-z_:][\w:]*", series["series"]).group(0)
            assert name in exported_names, f"{test['name']}: input series {name} is not exported"


@pytest.mark.parametrize(
    "expr,names",
    [
        ('up{job=~"otel-bare-metal.*"} == 0', {"up"}),
        ('1 - avg without (cpu_logical_number, cpu_mode) (rate(system_cpu_time_seconds_total{cpu_mode="idle"}[5m])) > 0.9',
         {"system_cpu_time_seconds_total"}),
        ("predict_linear(a_b{x=\"}{\"}[6h], 24 * 3600) < 0 and ignoring (state) c > 0.4", {"a_b", "c"}),
        ("sum by (instance) (rate(x_total[$__rate_interval])) / scalar(sum(y))", {"x_total", "y"}),
        ("z offset 5m > 1e9 and on (job, instance) group_left (model) info", {"z", "info"}),
        ('{__name__="hdhomerun_up", job="j"}', {"hdhomerun_up"}),
        ("system_filesystem_utilisation > 0.9", {"system_filesystem_utilisation"}),  # a misspelling is caught
    ],
)
def test_promql_scanner(expr, names):
    assert promql_metric_names(expr) == names
