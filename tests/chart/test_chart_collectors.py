"""The chart's workloads run the collectors they should, whatever collectors the registry holds.

The HDHomeRun Deployment must run the hdhomerun collector and no host collector, including
any collector added later (built-in or plugin): its arguments are parsed here by the
exporter's own command line, against the collector registry, so a new collector that the
Deployment would quietly start makes this fail.
"""

from __future__ import annotations

import pytest

from chart_support import SCENARIOS

from otel_bare_metal.config import flag_values
from otel_bare_metal.registry import registry


def container_environ(rendered, workload) -> dict[str, str]:
    """The exporter's environment: the chart's ConfigMap (envFrom), then the literal env."""
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name")
        for cm in rendered.of_kind("ConfigMap"):
            if cm["metadata"]["name"] == name:
                env.update(cm.get("data") or {})
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def collectors_of(rendered, workload, reg=None) -> set[str]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    values = flag_values(container["args"], container_environ(rendered, workload), reg or registry())
    return {name for name, on in values["collectors"].items() if on}


HDHOMERUN_SCENARIOS = [s for s in SCENARIOS if "hdhomerun" in s]


@pytest.mark.parametrize("scenario", HDHOMERUN_SCENARIOS)
def test_hdhomerun_deployment_runs_only_the_hdhomerun_collector(rendered_scenarios, scenario):
    (deploy,) = rendered_scenarios[scenario].of_kind("Deployment")
    assert collectors_of(rendered_scenarios[scenario], deploy) == {"hdhomerun"}


def test_a_new_collector_stays_out_of_the_hdhomerun_deployment(rendered_scenarios):
    """What the Deployment's flags mean with one more (default-on) collector registered."""
    from dataclasses import replace

    from otel_bare_metal.registry import Registry

    reg = registry()
    more = Registry(reg.specs + [replace(reg.get("cpu"), name="newhost", metrics=(), flags=(), options=None)])
    (scenario,) = HDHOMERUN_SCENARIOS[:1]
    (deploy,) = rendered_scenarios[scenario].of_kind("Deployment")
    assert collectors_of(rendered_scenarios[scenario], deploy, more) == {"hdhomerun"}


def test_the_daemonset_runs_the_host_collectors(default_render):
    (ds,) = default_render.of_kind("DaemonSet")
    host = {s.name for s in registry().specs if s.default_enabled and not s.plugin}
    assert host <= collectors_of(default_render, ds)


def test_there_is_an_hdhomerun_scenario():
    assert HDHOMERUN_SCENARIOS
