"""metricsNaming: the exporter containers get --metrics.naming, and the PrometheusRule and the
dashboard ConfigMap carry the variant of monitoring/ that matches the names (classic-values.yaml
renders the classic one)."""

from __future__ import annotations

import json

import pytest
import yaml

from chart_support import CHART_DIR, REPO, SCENARIOS, helm

WORKLOADS = ("DaemonSet", "Deployment")
MONITORING = REPO / "monitoring"


def exporter(workload: dict) -> dict:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def rules_of(rendered) -> list:
    return rendered.one("PrometheusRule")["spec"]["groups"]


def dashboard_of(rendered) -> dict:
    (cm,) = [d for d in rendered.of_kind("ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    return json.loads(cm["data"]["otel-bare-metal.json"])


def monitoring_rules(name: str) -> list:
    return yaml.safe_load((MONITORING / name).read_text())["groups"]


def monitoring_dashboard(name: str) -> dict:
    return json.loads((MONITORING / name).read_text())


def test_classic_scenario_exists():
    assert "classic-values.yaml" in SCENARIOS


@pytest.mark.parametrize("name", ["alerts-classic.yml", "dashboard-classic.json"])
def test_chart_copies_of_the_classic_variant_are_identical_to_monitoring(name):
    """Helm cannot read outside the chart: helm/otel-bare-metal/files/ keeps copies.  Refresh with:
    cp monitoring/alerts-classic.yml monitoring/dashboard-classic.json helm/otel-bare-metal/files/"""
    assert (CHART_DIR / "files" / name).read_bytes() == (MONITORING / name).read_bytes()


def test_classic_scenario_passes_the_flag_to_every_exporter(rendered_scenarios):
    rendered = rendered_scenarios["classic-values.yaml"]
    workloads = [d for d in rendered.docs if d["kind"] in WORKLOADS]
    assert {w["kind"] for w in workloads} == set(WORKLOADS), "the scenario runs the DaemonSet and the HDHomeRun Deployment"
    for workload in workloads:
        args = exporter(workload)["args"]
        assert "--metrics.naming=classic" in args, workload["kind"]
        assert not any(a.startswith("--metrics.naming=") and a != "--metrics.naming=classic" for a in args)


def test_classic_scenario_ships_the_classic_rules_and_dashboard(rendered_scenarios):
    rendered = rendered_scenarios["classic-values.yaml"]
    groups = rules_of(rendered)
    assert groups == monitoring_rules("alerts-classic.yml")
    assert groups != monitoring_rules("alerts.yml")
    assert "node_cpu_seconds_total" in json.dumps(groups) and "system_cpu_time_seconds_total" not in json.dumps(groups)
    assert rendered.one("PrometheusRule")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboard = dashboard_of(rendered)
    assert dashboard == monitoring_dashboard("dashboard-classic.json")
    assert dashboard["uid"] != monitoring_dashboard("dashboard.json")["uid"]


def test_default_naming_is_otel(default_render, render):
    assert "--metrics.naming=otel" in exporter(default_render.one("DaemonSet"))["args"]
    rendered = render({"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True},
                       "hdhomerun": {"enabled": True, "devices": ["192.168.1.50"]}})
    for workload in (d for d in rendered.docs if d["kind"] in WORKLOADS):
        assert "--metrics.naming=otel" in exporter(workload)["args"], workload["kind"]
    assert rules_of(rendered) == monitoring_rules("alerts.yml")
    assert dashboard_of(rendered) == monitoring_dashboard("dashboard.json")


def test_same_alert_names_in_both_renders(render):
    def names(naming):
        groups = rules_of(render({"metricsNaming": naming, "prometheusRule": {"enabled": True}}))
        return [r["alert"] for g in groups for r in g["rules"]]

    assert names("classic") == names("otel")


def test_naming_change_rolls_the_pods_through_the_pod_template(render):
    def template(naming):
        return render({"metricsNaming": naming}).one("DaemonSet")["spec"]["template"]

    assert template("otel") != template("classic")


@pytest.mark.parametrize("value", ["Classic", "node_exporter", "", "prometheus"])
def test_unknown_naming_is_refused(render, value):
    with pytest.raises(helm.HelmValuesError):
        render({"metricsNaming": value})
