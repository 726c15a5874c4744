"""Every definition is bound to what its collector really emits.

One collection of every registered collector (built-in and installed plugins) on the test
fixtures — the fixture /proc, rootfs and sysfs trees and two simulated HDHomeRun devices, one
with a CableCARD — through the real path (``app.build_collectors``, ``telemetry.instrument``).
For every definition, the attribute keys of every observed point must equal the definition's
``attributes`` (which the docs publish), and every definition must be observed at least once,
so this test can see it.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from helpers import FIXTURES
from otel_bare_metal.app import build_collectors
from otel_bare_metal.collectors.hdhomerun import HDHomeRunOptions
from otel_bare_metal.config import Config
from otel_bare_metal.exposition.prometheus import CARDINALITY_LIMITS
from otel_bare_metal.hdhr.simulator import Simulator
from otel_bare_metal.registry import registry
from otel_bare_metal.telemetry import SELF_MONITORING, instrument
from otel_bare_metal.telemetry.provider import meter_provider


def observed_attribute_keys(naming: str = "otel") -> dict[str, set[tuple[str, ...]]]:
    with Simulator("127.0.0.1", 0, tuners=2) as plain, Simulator("127.0.0.1", 0, tuners=2, cablecard=True) as cc:
        config = Config(procfs=str(FIXTURES / "proc"), sysfs=str(FIXTURES / "sys"), rootfs=str(FIXTURES / "rootfs"),
                        collectors={spec.name: True for spec in registry().specs},
                        options={"hdhomerun": HDHomeRunOptions(devices=(plain.address_text, cc.address_text), timeout=5.0)})
        collectors = build_collectors(config)
        reader = InMemoryMetricReader(cardinality_limits=CARDINALITY_LIMITS)
        provider = meter_provider(Resource.create({}), [reader])
        try:
            instrument(provider.get_meter("test"), collectors, naming=naming)
            data = reader.get_metrics_data()
        finally:
            provider.shutdown()
            for c in collectors:
                c.close()
    keys: dict[str, set[tuple[str, ...]]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                keys[m.name] = {tuple(sorted(p.attributes)) for p in m.data.data_points}
    return keys


def test_every_collector_runs_on_the_fixtures():
    assert {c.name for c in build_collectors(Config(procfs=str(FIXTURES / "proc"), rootfs=str(FIXTURES / "rootfs"),
                                                    sysfs=str(FIXTURES / "sys"),
                                                    options={"hdhomerun": HDHomeRunOptions(devices=("127.0.0.1:9",))},
                                                    collectors={s.name: True for s in registry().specs}))} \
        == {s.name for s in registry().specs}


def all_definitions():
    return list(SELF_MONITORING) + [m for spec in registry().specs for m in spec.metrics]


def test_observed_attribute_keys_equal_each_definitions_attributes():
    keys = observed_attribute_keys()
    definitions = [d for d in all_definitions() if not d.classic_only]
    assert not {d.name for d in all_definitions() if d.classic_only} & set(keys), "a classic-only row is not in OTel mode"
    unseen = [d.name for d in definitions if not keys.get(d.name)]
    assert not unseen, f"no point observed on the fixtures for {unseen}: extend the fixtures"
    wrong = {d.name: (sorted(d.attributes), sorted(keys[d.name])) for d in definitions
             if keys[d.name] != {tuple(sorted(d.attributes))}}
    assert not wrong, f"definition attributes vs observed keys: {wrong}"


def test_every_classic_metric_is_observed_with_its_labels():
    """Classic mode, classic-only rows included: a row's observations carry every attribute its
    classic labels are mapped from (a missing one would silently drop the label)."""
    from otel_bare_metal.telemetry.naming import instrument_for

    keys = observed_attribute_keys("classic")
    expected = {inst.name: tuple(sorted(inst.attributes))
                for parent in all_definitions() for inst in (instrument_for(parent, c) for c in parent.classic)}
    assert "node_filesystem_mount_info" in expected
    unseen = sorted(set(expected) - set(keys))
    assert not unseen, f"no point observed on the fixtures for {unseen}"
    wrong = {name: (labels, sorted(keys[name])) for name, labels in expected.items() if keys[name] != {labels}}
    assert not wrong, f"classic labels vs observed keys: {wrong}"
