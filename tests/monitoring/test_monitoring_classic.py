"""The classic-naming variant (--metrics.naming classic): monitoring/alerts-classic.yml,
alerts-classic_test.yml and dashboard-classic.json: every metric and label they use is a classic
one the collectors' rows define, and the variant stays in step with the OpenTelemetry one (same
alerts, durations, severities, panels).  What both variants must hold is in
test_monitoring_variants.py."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from monitoring_support import (
    CLASSIC_PROMETHEUS_SERIES,
    MONITORING,
    all_rules,
    alert_cases,
    classic_labels,
    classic_names,
    grafana_query_names,
    grafana_to_promql,
    graph_panels,
    panel_exprs,
    panels,
    promql_metric_names,
    series_name_and_labels,
    variable_query,
)

# Label names of the OpenTelemetry naming: none of them may appear in the classic variant.
OTEL_LABEL = re.compile(r"\b(cpu_logical_number|cpu_mode|system_device|system_filesystem_\w+|hdhomerun_(device|tuner|channel|lock|model)\b)")
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


# ---------------------------------------------------------------------------- alert rules: promtool


# ---------------------------------------------------------------------------- in step with alerts.yml


def test_same_alerts_as_the_otel_variant(alerts, classic_alerts):
    otel, classic = all_rules(alerts), all_rules(classic_alerts)
    assert len(classic) == len(otel)
    assert [r["alert"] for r in classic] == [r["alert"] for r in otel], "same alert names, in the same order"
    assert [g["name"] for g in classic_alerts["groups"]] == [g["name"] for g in alerts["groups"]]
    for o, c in zip(otel, classic):
        assert c.get("for") == o.get("for"), c["alert"]
        assert c["labels"] == o["labels"], c["alert"]
        assert set(c["annotations"]) == set(o["annotations"]), c["alert"]


def test_every_alert_is_tested_in_both_variants(alert_tests, classic_alert_tests):
    assert set(alert_cases(classic_alert_tests)) == set(alert_cases(alert_tests))


# ---------------------------------------------------------------------------- alert rules: classic names only


def test_rules_use_only_classic_metrics(classic_alerts, classic_exported_names):
    for rule in all_rules(classic_alerts):
        used = promql_metric_names(rule["expr"])
        assert used, f"{rule['alert']}: no metric found in its expression"
        assert used <= classic_exported_names, f"{rule['alert']} uses {sorted(used - classic_exported_names)}, not a classic name"


def test_rules_use_no_otel_label(classic_alerts):
    for rule in all_rules(classic_alerts):
        for text in [rule["expr"], *rule["annotations"].values()]:
            assert not OTEL_LABEL.search(text), f"{rule['alert']}: OpenTelemetry label in {text!r}"


def test_rules_use_only_labels_the_metrics_have(classic_alerts):
    """Every label a rule matches on, groups by or prints is a label of some classic metric it
    uses (or a target label)."""
    labels = classic_labels()
    for rule in all_rules(classic_alerts):
        allowed = set(TARGET_LABELS)
        for name in promql_metric_names(rule["expr"]) - CLASSIC_PROMETHEUS_SERIES:
            allowed |= labels[name]
        used = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
        for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^()]*)\)", rule["expr"]):
            used |= {label.strip() for label in group.split(",") if label.strip()}
        for matchers in re.findall(r"\{([^{}]*)\}", rule["expr"]):
            used |= set(re.findall(r"(\w+)\s*[=!]~?", matchers))
        assert used <= allowed, f"{rule['alert']} uses labels {sorted(used - allowed)}"


def test_unit_tests_feed_only_classic_series(classic_alert_tests, classic_exported_names):
    labels = classic_labels()
    for test in classic_alert_tests["tests"]:
        for series in test["input_series"]:
            name, got = series_name_and_labels(series["series"])
            assert name in classic_exported_names, f"{test['name']}: input series {name} is not a classic name"
            allowed = labels.get(name, set()) | TARGET_LABELS
            assert set(got) <= allowed, f"{test['name']}: {name} has labels {sorted(set(got) - allowed)} the exporter does not give it"


def test_hdhomerun_tests_cover_metrics_and_probe(classic_alert_tests):
    """/metrics carries a device label, /probe does not: both shapes are fed to every tuner alert."""
    firing = {}
    for test in classic_alert_tests["tests"]:
        for case in test.get("alert_rule_test", []):
            for alert in case.get("exp_alerts") or []:
                firing.setdefault(case["alertname"], set()).add("device" in alert["exp_labels"])
    for name in ("OtelBareMetalHDHomeRunDown", "OtelBareMetalHDHomeRunWeakSignal",
                 "OtelBareMetalHDHomeRunSignalQualityFalling", "OtelBareMetalHDHomeRunStreamErrors"):
        assert firing.get(name) == {True, False}, f"{name} is not tested firing both with and without a device label"


def test_hung_mount_uses_device_error_and_says_so(classic_alerts):
    rules = {r["alert"]: r for r in all_rules(classic_alerts)}
    hung, error = rules["OtelBareMetalMountHung"], rules["OtelBareMetalMountError"]
    assert promql_metric_names(hung["expr"]) == {"node_filesystem_device_error"}
    assert "node_filesystem_device_error" in hung["annotations"]["description"]
    assert hung["labels"]["severity"] == "critical"
    # The two alerts split the erroring mounts by filesystem type: never both for one mount.
    (hung_types,) = re.findall(r'fstype=~"([^"]+)"', hung["expr"])
    (error_types,) = re.findall(r'fstype!~"([^"]+)"', error["expr"])
    assert hung_types == error_types


def test_classic_definitions_match_the_brief():
    """The names the classic files are written against exist in the definitions table."""
    names = classic_names()
    for name in ("node_cpu_seconds_total", "node_filesystem_size_bytes", "node_filesystem_free_bytes",
                 "node_filesystem_avail_bytes", "node_filesystem_files", "node_filesystem_files_free",
                 "node_filesystem_readonly", "node_filesystem_device_error", "node_scrape_collector_success",
                 "hdhomerun_up", "hdhomerun_tuner_info", "hdhomerun_tuner_signal_strength_ratio",
                 "hdhomerun_tuner_signal_to_noise_ratio", "hdhomerun_tuner_symbol_error_ratio",
                 "hdhomerun_tuner_transport_errors_total", "hdhomerun_tuner_crc_errors_total"):
        assert name in names, name


# ---------------------------------------------------------------------------- dashboard


def test_dashboard_is_generated_and_up_to_date():
    result = subprocess.run([sys.executable, str(MONITORING / "make_classic.py"), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr + "  (run: python monitoring/make_classic.py)"


def test_both_dashboards_can_be_imported_into_one_grafana(classic_dashboard, dashboard):
    assert classic_dashboard["uid"] != dashboard["uid"]
    assert classic_dashboard["title"] != dashboard["title"]


def test_same_panels_as_the_otel_variant(classic_dashboard, dashboard):
    def layout(d):
        return [(p["id"], p["type"], p["title"], p["gridPos"]) for p in panels(d)]

    assert layout(classic_dashboard) == layout(dashboard)
    assert [v["name"] for v in classic_dashboard["templating"]["list"]] == [v["name"] for v in dashboard["templating"]["list"]]


def test_dashboard_uses_only_classic_metrics_and_labels(classic_dashboard, classic_exported_names):
    for panel in graph_panels(classic_dashboard):
        for target in panel["targets"]:
            used = promql_metric_names(target["expr"])
            assert used, f"{panel['title']}: no metric in {target['expr']}"
            assert used <= classic_exported_names, f"{panel['title']} uses {sorted(used - classic_exported_names)}"
            assert not OTEL_LABEL.search(target["expr"] + target.get("legendFormat", "")), panel["title"]
    for variable in classic_dashboard["templating"]["list"]:
        if variable["type"] == "query":
            used = grafana_query_names(variable_query(variable))
            assert used and used <= classic_exported_names, variable["name"]
            assert not OTEL_LABEL.search(variable_query(variable)), variable["name"]


def test_dashboard_charts_every_classic_family(classic_dashboard):
    used = set()
    for panel in graph_panels(classic_dashboard):
        for expr in panel_exprs(panel):
            used |= promql_metric_names(expr)
    missing = classic_names() - used
    assert not missing, f"classic metrics no panel shows: {sorted(missing)}"


def test_dashboard_queries_parse(classic_dashboard, promtool, tmp_path):
    """promtool parses every query (Grafana variables filled in) as a recording rule."""
    rules = [{"record": f"dashboard:panel{p['id']}:{t['refId']}", "expr": grafana_to_promql(t["expr"])}
             for p in graph_panels(classic_dashboard) for t in p["targets"]]
    (tmp_path / "dashboard-rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", "dashboard-rules.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

