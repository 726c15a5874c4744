"""monitoring/alerts.yml: the alerts operators need exist, are well-formed, and use only metrics
the exporter exports (promtool and the firing/silent cases: test_monitoring_variants.py)."""

from __future__ import annotations

import re

import pytest
import yaml

from monitoring_support import MONITORING, all_rules, promql_metric_names

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


# ---------------------------------------------------------------------------- runbooks

RUNBOOKS = MONITORING.parent / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/otel-bare-metal/otel-bare-metal/blob/main/docs/runbooks.md#"


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces → -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _runbook_sections() -> dict[str, str]:
    sections: dict[str, str] = {}
    current = None
    for line in RUNBOOKS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            current = _github_anchor(m.group(1))
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


@pytest.mark.parametrize("variant", ["alerts.yml", "alerts-classic.yml"])
def test_every_alert_links_its_runbook_section(variant):
    """runbook_url points into docs/runbooks.md at an anchor that exists, and that section says
    what the alert means, how to check and how to fix it."""
    sections = _runbook_sections()
    rules = [r for g in yaml.safe_load((MONITORING / variant).read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert rules
    for rule in rules:
        url = rule["annotations"].get("runbook_url", "")
        assert url.startswith(RUNBOOK_BASE), f"{rule['alert']}: runbook_url {url!r}"
        anchor = url[len(RUNBOOK_BASE):]
        assert anchor in sections, f"{rule['alert']}: docs/runbooks.md has no section #{anchor}"
        assert anchor == _github_anchor(rule["alert"]), f"{rule['alert']}: links another alert's section"
        for part in ("**What it means.**", "**How to check.**", "**How to fix.**"):
            assert part in sections[anchor], f"{rule['alert']}: runbook section lacks {part}"


def test_github_anchor():
    assert _github_anchor("OtelBareMetalExporterDown") == "otelbaremetalexporterdown"
    assert _github_anchor("What it means, and why") == "what-it-means-and-why"
