"""monitoring/dashboard.json is a Grafana dashboard that charts what the exporter exports."""

from __future__ import annotations

import pytest

from monitoring_support import grafana_query_names, promql_metric_names


def panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def graph_panels(dashboard):
    return [p for p in panels(dashboard) if p["type"] != "row"]


def exprs(panel):
    return [t["expr"] for t in panel["targets"]]


def find(dashboard, word):
    found = [p for p in graph_panels(dashboard) if word.lower() in p["title"].lower()]
    assert found, f"no panel titled with {word!r}"
    return found


def test_dashboard_identity(dashboard):
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["time"]["from"].startswith("now-")


def test_datasource_variable(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}"


def test_every_panel_has_targets_on_the_variable_datasource(dashboard):
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in graph_panels(dashboard):
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip()
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0


def test_dashboard_uses_only_exported_metrics(dashboard, exported_names):
    for panel in graph_panels(dashboard):
        for expr in exprs(panel):
            used = promql_metric_names(expr)
            assert used, f"{panel['title']}: no metric in {expr}"
            assert used <= exported_names, f"{panel['title']} uses {sorted(used - exported_names)}"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            used = grafana_query_names(query)
            assert used and used <= exported_names, variable["name"]


def test_dashboard_charts_every_exported_family(dashboard, exported_names):
    used = set()
    for panel in graph_panels(dashboard):
        for expr in exprs(panel):
            used |= promql_metric_names(expr)
    from helpers import builtin_metrics

    METRICS = builtin_metrics()

    # A name the reader is told to override (system_cpu_logical_cpus) is a different name through
    # a Collector (system_cpu_logical_count): the dashboard must not depend on it (docs/metrics.md).
    path_dependent = {m.prometheus_name for m in METRICS if m.prometheus}
    missing = {m.prometheus_name for m in METRICS if not m.classic_only} - used - path_dependent
    assert not missing, f"metrics no panel shows: {sorted(missing)}"
    assert not used & path_dependent, f"names that differ through a Collector: {sorted(used & path_dependent)}"


def test_cpu_by_mode(dashboard):
    (panel,) = find(dashboard, "CPU by mode")
    assert any("system_cpu_time_seconds_total" in e and "by (cpu_mode)" in e for e in exprs(panel))


def test_filesystem_usage_and_forecast(dashboard):
    assert any("system_filesystem_utilization_ratio" in e for p in find(dashboard, "utilization") for e in exprs(p))
    (forecast,) = find(dashboard, "forecast")
    assert any(e.startswith("predict_linear(system_filesystem_usage_bytes") for e in exprs(forecast))


@pytest.mark.parametrize("title,metric", [
    ("Signal strength", "hdhomerun_tuner_signal_strength_ratio"),
    ("Signal-to-noise", "hdhomerun_tuner_signal_to_noise_quality_ratio"),
    ("Symbol quality", "hdhomerun_tuner_symbol_quality_ratio"),
    ("Transport and CRC errors", "hdhomerun_tuner_crc_errors_total"),
    ("Transport and CRC errors", "hdhomerun_tuner_transport_errors_total"),
])
def test_hdhomerun_panels_per_device_and_tuner(dashboard, title, metric):
    (panel,) = find(dashboard, title)
    targets = [t for t in panel["targets"] if metric in t["expr"]]
    assert targets
    for t in targets:
        assert "{{hdhomerun_device}}" in t["legendFormat"] and "{{hdhomerun_tuner}}" in t["legendFormat"]
        assert 'hdhomerun_device=~"$device"' in t["expr"]


def test_exporter_health(dashboard):
    used = set()
    for word in ("Targets up", "Collector"):
        for panel in find(dashboard, word):
            for e in exprs(panel):
                used |= promql_metric_names(e)
    assert {"up", "otel_bare_metal_collector_success", "otel_bare_metal_collector_duration_seconds"} <= used
