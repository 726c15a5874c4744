"""One set of alerts and dashboards for every path, held with the real Collector (docs/metrics.md,
"Names on every path").

One Debian Prometheus (remote-write receiver on) gets the same exporter's data five ways:

| path        | how                                                                                     |
|-------------|-----------------------------------------------------------------------------------------|
| direct      | Prometheus scrapes otel-bare-metal's /metrics                                           |
| otelcol-pull| the Collector (mixed-shop.yaml) scrapes /metrics; Prometheus scrapes its prometheus exporter |
| otelcol-grpc| otel-bare-metal pushes OTLP/gRPC to that Collector; same exporter                       |
| otelcol-http| the same over OTLP/HTTP                                                                 |
| remote-write| otel-bare-metal pushes OTLP/gRPC to push.yaml's Collector, which remote-writes           |

for both naming modes (otel and classic), each exporter also reading an HDHomeRun simulator.
Then, per path and mode: every metric and label the rules and the dashboard use exists, and the
promtool cases of alerts_test.yml / alerts-classic_test.yml, re-labelled with the label shape
that path really has, fire and stay silent as on the direct path.  A push path has no ``up``:
there OtelBareMetalExporterDown stays silent and OtelBareMetalExporterAbsent takes its place.
"""

from __future__ import annotations

import copy
import re
import subprocess
from contextlib import ExitStack

import pytest
import yaml

from collector_support import load, loopback, running_collector, running_prometheus, wait_for
from helpers import FIXTURES, running_exporter
from monitoring_support import MONITORING, VARIANTS, all_rules, graph_panels, panel_exprs, promql_metric_names
from otel_bare_metal.hdhr.simulator import Simulator

pytestmark = pytest.mark.peers  # main interpreter only (scripts/test)

PATHS = ("direct", "otelcol-pull", "otelcol-grpc", "otelcol-http", "remote-write")
PUSH = {"otelcol-grpc", "otelcol-http", "remote-write"}
MODES = ("otel", "classic")
FIXTURE_ARGS = (f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}")


def instance(path: str, mode: str) -> str:
    return f"{path}-{mode}"


@pytest.fixture(scope="module")
def landscape(tmp_path_factory):
    """Every path at once; yields {(path, mode): [label sets of that instance's series]}."""
    tmp = tmp_path_factory.mktemp("paths")
    with ExitStack() as stack:
        sim = stack.enter_context(Simulator("127.0.0.1", 0, tuners=2, cablecard=True))
        common = (*FIXTURE_ARGS, f"--hdhomerun.device={sim.address_text}")

        def exporter(path: str, mode: str, env: dict[str, str] | None = None) -> str:
            resource = f"host.name={instance(path, mode)},service.instance.id={instance(path, mode)}"
            base = stack.enter_context(running_exporter(*common, f"--metrics.naming={mode}",
                                                        env={"OTEL_RESOURCE_ATTRIBUTES": resource, **(env or {})}))
            return base.removeprefix("http://")

        pulled = {mode: exporter("otelcol-pull", mode) for mode in MODES}
        mixed, mixed_ports = loopback(load("mixed-shop.yaml"), targets=list(pulled.values()), interval="1s")
        stack.enter_context(running_collector(mixed, tmp, mixed_ports, name="mixed-shop"))
        direct = {mode: exporter("direct", mode) for mode in MODES}
        scrape = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                # instance = the exporter's host name, as users relabel it
                {"job_name": "otel-bare-metal",
                 "static_configs": [{"targets": [direct[m]], "labels": {"__instance": instance("direct", m)}} for m in MODES],
                 "relabel_configs": [{"source_labels": ["__instance"], "target_label": "instance"}]},
                # the Collector's exporter: its job/instance are the exporters', kept as they are
                {"job_name": "otel-collector", "honor_labels": True,
                 "static_configs": [{"targets": [f"127.0.0.1:{mixed_ports['prometheus']}"]}]},
            ],
        }
        prom = stack.enter_context(running_prometheus(tmp, yaml.safe_dump(scrape), "--web.enable-remote-write-receiver"))
        push, push_ports = loopback(load("push.yaml"), remote_write=f"{prom.url}/api/v1/write")
        stack.enter_context(running_collector(push, tmp, push_ports, name="push"))

        def otlp(port: int, protocol: str) -> dict[str, str]:
            return {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}

        for mode in MODES:
            exporter("otelcol-grpc", mode, otlp(mixed_ports["otlp/grpc"], "grpc"))
            exporter("otelcol-http", mode, otlp(mixed_ports["otlp/http"], "http/protobuf"))
            exporter("remote-write", mode, otlp(push_ports["otlp/grpc"], "grpc"))

        def everything():
            found = {}
            for path in PATHS:
                for mode in MODES:
                    got = prom.series(f'{{instance="{instance(path, mode)}"}}')
                    names = {s["__name__"] for s in got}
                    wanted = {"hdhomerun_up", "target_info"} | ({"system_cpu_time_seconds_total"} if mode == "otel"
                                                                 else {"node_cpu_seconds_total"})
                    if not wanted <= names:
                        return None
                    found[(path, mode)] = got
            return found

        # two rounds of every exporter, so every series has been seen
        wait_for(everything, timeout=90, what="every path's series in Prometheus")
        yield wait_for(lambda: everything(), timeout=30, what="second look")


# ----------------------------------------------------------------------------- names and labels

_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^()]*)\)")


def used(variant: str) -> list[tuple[str, str]]:
    """(where, expression) of every rule and dashboard query of a variant."""
    alerts = yaml.safe_load((MONITORING / VARIANTS[variant]["alerts"]).read_text())
    import json

    dashboard = json.loads((MONITORING / VARIANTS[variant]["dashboard"]).read_text())
    exprs = [(f"alert {r['alert']}", r["expr"]) for r in all_rules(alerts)]
    exprs += [(f"panel {p['title']}", e) for p in graph_panels(dashboard) for e in panel_exprs(p)]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, re.S)
            if m:
                exprs.append((f"variable {variable['name']}", f"group by ({m.group(2)}) ({m.group(1)})"))
    return [(where, re.sub(r"\$\{?\w+\}?", "x", e)) for where, e in exprs]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", PATHS)
def test_every_name_and_label_the_rules_and_dashboard_use_exists(landscape, path, mode):
    labels_of: dict[str, set[str]] = {}
    for s in landscape[(path, mode)]:
        labels_of.setdefault(s["__name__"], set()).update(s)
    missing = []
    for where, expr in used(mode):
        names = promql_metric_names(expr) - {"ALERTS"}
        if path in PUSH:
            names -= {"up"}  # push has no up: OtelBareMetalExporterAbsent covers it (see the promtool cases)
        for name in names:
            if name not in labels_of:
                missing.append(f"{where}: {name}")
        for name, matchers in _SELECTOR.findall(expr):
            for label in _MATCHER_LABEL.findall(matchers):
                if name in labels_of and label not in labels_of[name]:
                    missing.append(f"{where}: {name} has no label {label}")
        present = set().union(*(labels_of.get(n, set()) for n in names)) if names else set()
        for group in _GROUPING.findall(expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                if label not in present and label not in ("alertname",):
                    missing.append(f"{where}: no series has label {label}")
    assert not missing, f"{path} / {mode}:\n" + "\n".join(sorted(set(missing)))


# ----------------------------------------------------------------------------- fires or stays silent

def relabelled_tests(variant: str, path: str, shape: dict[str, dict[str, str]], common: dict[str, str]) -> dict:
    """alerts_test.yml with every input series given the labels this path adds (otel_scope_*,
    allow-listed resource labels, …), ``up`` removed on push paths, and every alert_rule_test
    turned into a count of firing ALERTS, expected as on the direct path."""
    tests = yaml.safe_load((MONITORING / VARIANTS[variant]["tests"]).read_text())
    tests = copy.deepcopy(tests)
    tests["rule_files"] = [str(MONITORING / VARIANTS[variant]["alerts"])]
    for group in tests["tests"]:
        kept = []
        for entry in group["input_series"]:
            m = re.fullmatch(r"\s*([A-Za-z_:][\w:]*)\s*(?:\{(.*)\})?\s*", entry["series"], re.S)
            name, labels = m.group(1), m.group(2) or ""
            if path in PUSH and name == "up":
                continue
            extra = shape.get(name, common)
            given = set(re.findall(r"(\w+)\s*=", labels))
            added = ",".join(f'{k}="{v}"' for k, v in sorted(extra.items()) if k not in given)
            labels = ",".join(x for x in (labels.strip(), added) if x)
            kept.append({**entry, "series": f"{name}{{{labels}}}"})
        group["input_series"] = kept
        cases = []
        for case in group.pop("alert_rule_test", []):
            expected = len(case.get("exp_alerts") or [])
            name = case["alertname"]
            if path in PUSH and name.endswith("ExporterDown"):
                expected = 0  # no up on a push path
            if path in PUSH and name.endswith("ExporterAbsent") and expected:
                expected += 1  # the scraped node-s of that case pushes here: it has no up either
            cases.append({"expr": f'count(ALERTS{{alertname="{name}",alertstate="firing"}}) or vector(0)',
                          "eval_time": case["eval_time"], "exp_samples": [{"value": expected}],
                          "_alert": name})
        group["promql_expr_test"] = group.get("promql_expr_test", []) + cases
    return tests


def shape_of(series: list[dict[str, str]], direct: list[dict[str, str]]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Labels this path puts on each metric (and on all of them) beyond what the direct path has."""
    direct_labels: dict[str, set[str]] = {}
    for s in direct:
        direct_labels.setdefault(s["__name__"], set()).update(s)
    base = {"__name__", "job", "instance"}
    shape: dict[str, dict[str, str]] = {}
    for s in series:
        name = s["__name__"]
        extra = {k: v for k, v in s.items() if k not in base and k not in direct_labels.get(name, set())}
        shape.setdefault(name, {}).update(extra)
    everywhere = [set(v) for n, v in shape.items() if n not in ("up", "target_info") and not n.startswith("scrape_")]
    common_keys = set.intersection(*everywhere) if everywhere else set()
    common = {k: v for values in shape.values() for k, v in values.items() if k in common_keys}
    return shape, common


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", PATHS)
def test_alerts_fire_and_stay_silent_on_every_path(landscape, tmp_path, path, mode):
    shape, common = shape_of(landscape[(path, mode)], landscape[("direct", mode)])
    tests = relabelled_tests(mode, path, shape, common)
    table: dict[str, set[str]] = {}
    for group in tests["tests"]:
        for case in group["promql_expr_test"]:
            alert = case.pop("_alert", None)
            if alert:
                table.setdefault(alert, set()).add("fires" if case["exp_samples"][0]["value"] else "silent")
    file = tmp_path / "tests.yml"
    file.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run(["promtool", "test", "rules", str(file)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{path} / {mode} (extra labels {common}):\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
    # every alert is tested firing on this path, except ExporterDown on push paths (no up there)
    for alert, outcomes in table.items():
        if path in PUSH and alert.endswith("ExporterDown"):
            assert outcomes == {"silent"}
        else:
            assert outcomes == {"fires", "silent"}, f"{alert} on {path}: {outcomes}"
