"""monitoring/dashboard.json is a Grafana dashboard that charts what the exporter exports."""

from __future__ import annotations

from monitoring_support import grafana_query_names, graph_panels, panel_exprs as exprs, promql_metric_names


def find(dashboard, word):
    found = [p for p in graph_panels(dashboard) if word.lower() in p["title"].lower()]
    assert found, f"no panel titled with {word!r}"
    return found


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


def test_filesystem_usage_and_forecast(dashboard):
    assert any("system_filesystem_utilization_ratio" in e for p in find(dashboard, "utilization") for e in exprs(p))
    (forecast,) = find(dashboard, "forecast")
    assert any(e.startswith("predict_linear(system_filesystem_usage_bytes") for e in exprs(forecast))


def test_exporter_health(dashboard):
    used = set()
    for word in ("Targets up", "Collector"):
        for panel in find(dashboard, word):
            for e in exprs(panel):
                used |= promql_metric_names(e)
    assert {"up", "otel_bare_metal_collector_success", "otel_bare_metal_collector_duration_seconds"} <= used
    own = set()
    for panel in find(dashboard, "Exporter"):
        assert panel["gridPos"]["y"] < 17, f"{panel['title']} is in the exporter health row"
        for e in exprs(panel):
            own |= promql_metric_names(e)
    assert {"process_cpu_time_seconds_total", "process_memory_usage_bytes", "process_uptime_seconds",
            "otel_bare_metal_build_info", "otel_bare_metal_process_file_descriptor_utilization_ratio"} <= own
