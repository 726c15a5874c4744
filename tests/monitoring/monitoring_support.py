"""Shared helpers for the monitoring tests (fixtures are in conftest.py): a small PromQL scanner."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"

# Series Prometheus itself adds: the scrape's health, the OTel resource, and alert state.
PROMETHEUS_SERIES = {"up", "target_info", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "atan2", "inf", "nan", "Inf", "NaN", "start", "end",
}

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (Grafana variables allowed).

    Strings, label matchers ``{…}``, ranges ``[…]`` and grouping label lists ``by (…)`` are cut
    out first; what remains is a metric name unless it calls (a function or an aggregation)
    or is a keyword.  ``{__name__="x"}`` selectors are read too.
    """
    names = set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    for alternatives in re.findall(r'__name__\s*=~\s*"([\w:|]+)"', expr):  # {__name__=~"a|b"}
        names.update(alternatives.split("|"))
    text = _VARIABLE.sub(" ", expr)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in KEYWORDS:
            continue
        names.add(name)
    return names


def grafana_query_names(query: str) -> set[str]:
    """Metric names in a Grafana variable query: label_values(selector, label), query_result(expr)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query, re.S)
    if m:
        return promql_metric_names(m.group(1))
    m = re.fullmatch(r"\s*(?:query_result|metrics)\((.*)\)\s*", query, re.S)
    if m:
        return promql_metric_names(m.group(1))
    return set()


# ---------------------------------------------------------------------------- shared by both variants
# alerts.yml / dashboard.json use the OpenTelemetry names; alerts-classic.yml / dashboard-classic.json
# the classic ones (--metrics.naming classic).  These helpers serve the tests of either.

VARIANTS = {
    "otel": {"alerts": "alerts.yml", "tests": "alerts_test.yml", "dashboard": "dashboard.json"},
    "classic": {"alerts": "alerts-classic.yml", "tests": "alerts-classic_test.yml", "dashboard": "dashboard-classic.json"},
}

# Series Prometheus adds that the classic rules may use: the scrape's health, the resource (target_info,
# the push paths' "exporter gone" signal) and alert state.
CLASSIC_PROMETHEUS_SERIES = {"up", "target_info", "ALERTS"}


def classic_names() -> set[str]:
    """Every classic metric name in the definitions table."""
    from helpers import builtin_metrics

    METRICS = builtin_metrics()

    return {c.name for m in METRICS for c in m.classic}


def classic_labels() -> dict[str, set[str]]:
    """Classic metric name → the labels the exporter gives it."""
    from helpers import builtin_metrics

    METRICS = builtin_metrics()

    return {c.name: set(c.labels.values()) for m in METRICS for c in m.classic}


def all_rules(alerts: dict) -> list[dict]:
    return [rule for group in alerts["groups"] for rule in group["rules"]]


def alert_cases(alert_tests: dict) -> dict[str, list[list]]:
    """Alert name → the exp_alerts of every promtool case that names it."""
    cases: dict[str, list[list]] = {}
    for test in alert_tests["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    return cases


def series_name_and_labels(series: str) -> tuple[str, dict[str, str]]:
    """Split a promtool input series 'name{a="b",…}' into its name and labels."""
    m = re.fullmatch(r"\s*([A-Za-z_:][\w:]*)\s*(?:\{(.*)\})?\s*", series, re.S)
    assert m, f"cannot parse input series {series!r}"
    labels = dict(re.findall(r'(\w+)\s*=\s*"((?:\\.|[^"\\])*)"', m.group(2) or ""))
    return m.group(1), labels


def panels(dashboard: dict):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def graph_panels(dashboard: dict) -> list[dict]:
    return [p for p in panels(dashboard) if p["type"] != "row"]


def panel_exprs(panel: dict) -> list[str]:
    return [t["expr"] for t in panel["targets"]]


def variable_query(variable: dict) -> str:
    return variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]


def grafana_to_promql(expr: str) -> str:
    """A dashboard query with its Grafana variables filled in, for promtool to parse."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)
