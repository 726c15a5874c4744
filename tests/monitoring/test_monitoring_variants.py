"""What both naming variants of monitoring/ must hold, one test each, run for both: promtool
accepts the rules and their unit tests pass, every alert fires and stays silent in a test, the
forecast uses predict_linear, and the dashboard is well-formed with the panels operators look
for.  Variant-specific checks stay in test_monitoring_alerts.py, test_monitoring_dashboard.py
and test_monitoring_classic.py."""

from __future__ import annotations

import subprocess

from monitoring_support import MONITORING, alert_cases, all_rules, graph_panels, panel_exprs, panels, variable_query


def test_promtool_check_rules(variant, promtool):
    result = subprocess.run([promtool, "check", "rules", variant.alerts_file], cwd=MONITORING, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(variant, promtool):
    result = subprocess.run([promtool, "test", "rules", variant.alert_tests_file], cwd=MONITORING, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_load_their_own_rules(variant):
    assert variant.load(variant.alert_tests_file)["rule_files"] == [variant.alerts_file]


def test_every_alert_fires_and_stays_silent_in_a_test(variant):
    cases = alert_cases(variant.load(variant.alert_tests_file))
    names = {r["alert"] for r in all_rules(variant.load(variant.alerts_file))}
    for name in names:
        assert name in cases, f"{name} has no promtool test"
        assert any(expected for expected in cases[name]), f"{name} is never tested firing"
        assert any(not expected for expected in cases[name]), f"{name} is never tested silent"
    assert set(cases) <= names, "a test names an alert that does not exist"


def test_predicted_full_uses_predict_linear(variant):
    (rule,) = [r for r in all_rules(variant.load(variant.alerts_file)) if r["alert"].endswith("FilesystemPredictedFull")]
    assert variant.forecast in rule["expr"]


def test_dashboard_identity(variant):
    dashboard = variant.load(variant.dashboard_file)
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["time"]["from"].startswith("now-")


def test_datasource_variable(variant):
    variables = {v["name"]: v for v in variant.load(variant.dashboard_file)["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}"
            assert v["definition"] == variable_query(v)


def test_every_panel_has_targets_on_the_variable_datasource(variant):
    dashboard = variant.load(variant.dashboard_file)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in graph_panels(dashboard):
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0


def test_cpu_by_mode(variant):
    metric, grouping = variant.cpu_by_mode
    (panel,) = [p for p in graph_panels(variant.load(variant.dashboard_file)) if p["title"] == "CPU by mode"]
    assert any(metric in e and grouping in e for e in panel_exprs(panel))


def test_hdhomerun_panels_per_device_and_tuner(variant):
    dashboard = variant.load(variant.dashboard_file)
    for title, metric in variant.hdhomerun_panels:
        (panel,) = [p for p in graph_panels(dashboard) if title.lower() in p["title"].lower()]
        targets = [t for t in panel["targets"] if metric in t["expr"]]
        assert targets, (title, metric)
        for t in targets:
            assert all(label in t["legendFormat"] for label in variant.tuner_legend), (title, t["legendFormat"])
            assert variant.device_matcher in t["expr"], (title, t["expr"])
