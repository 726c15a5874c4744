"""The collector registry: definitions bound to observers, generated flags, plugins loaded or skipped."""

from __future__ import annotations

from dataclasses import replace

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from helpers import FIXTURES, log_text
from otel_bare_metal.config import Config, ConfigError, load, parser
from otel_bare_metal.registry import CollectorSpec, Flag, Registry, load_plugins, registry
from otel_bare_metal.collectors.cpu.source import ProcfsCPUSource
from otel_bare_metal.telemetry import SourceWorker, instrument, register
from otel_bare_metal.telemetry.definitions import Kind, Metric
from otel_bare_metal.collectors.hdhomerun.metrics import TUNER_STREAM_STOP_REASON, HDHomeRunObservers

PROC = str(FIXTURES / "proc")


def config(argv, environ=None):
    return load([f"--path.procfs={PROC}", *argv], environ or {}, registry())


# ------------------------------------------------------------------ definitions bound to code


def test_a_definition_without_an_observer_fails_at_start():
    """An observer bound to anything but the row it observes (here: a look-alike row of another
    name) leaves that row without an observer: the exporter refuses to start, naming both."""
    c = SourceWorker("hdhomerun", source=type("Idle", (), {"read": lambda self: None})())
    observers = HDHomeRunObservers(c).observers()
    stray = replace(TUNER_STREAM_STOP_REASON, name="hdhomerun.tuner.stop_reason")
    observers[stray] = observers.pop(TUNER_STREAM_STOP_REASON)
    meter = MeterProvider().get_meter("t")
    with pytest.raises(ValueError) as e:
        register(meter, observers, [c], registry().get("hdhomerun").metrics)
    assert "no observer for hdhomerun.tuner.stream_stop_reason" in str(e.value)
    assert "no definition for hdhomerun.tuner.stop_reason" in str(e.value)


def test_instrument_refuses_an_observer_class_that_misses_a_metric():
    class Partial:
        def __init__(self, collector):
            pass

        def observers(self):
            return {}

    spec = replace(registry().get("cpu"), observers=Partial)
    reg = Registry([spec])
    with pytest.raises(ValueError, match="no observer for .*system.cpu.time"):
        instrument(MeterProvider().get_meter("t"), [SourceWorker("cpu", ProcfsCPUSource(PROC, hz=100))], registry=reg)


def test_an_observer_that_raises_fails_only_its_own_collector():
    good = SourceWorker("cpu", ProcfsCPUSource(PROC, hz=100))
    bad_metric = Metric("broken.value", Kind.GAUGE, "1", "d", (), "broken")

    class Broken:
        def __init__(self, collector):
            pass

        def observers(self):
            def observe():
                raise RuntimeError("bug in a plugin")

            return {bad_metric: observe}

    spec = CollectorSpec("broken", source=lambda paths, options: None, observers=Broken, metrics=(bad_metric,))
    reg = Registry([registry().get("cpu"), spec])
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(provider.get_meter("t"), [good, SourceWorker("broken", type("S", (), {"read": lambda self: 1})())], registry=reg)
    data = reader.get_metrics_data()
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    success = {p.attributes["collector"]: p.value for p in metrics["otel_bare_metal.collector.success"].data.data_points}
    assert success == {"cpu": 1, "broken": 0}
    assert metrics["system.cpu.time"].data.data_points  # the healthy collector still exports
    provider.shutdown()


# ------------------------------------------------------------------ generated flags


def test_every_collector_has_an_enable_flag_and_an_environment_variable():
    text = parser(registry()).format_help()
    for spec in registry().specs:
        assert f"--collector.{spec.name}, --no-collector.{spec.name}" in text
        assert spec.enable_flag.env in text


def on(c) -> set[str]:
    return {name for name, enabled in c.collectors.items() if enabled}


def test_disable_defaults_keeps_only_what_was_asked_for():
    default_on = {s.name for s in registry().specs if s.default_enabled}  # plugins may add some
    assert {"cpu", "filesystem", "hdhomerun"} <= default_on
    assert on(config([])) == default_on
    assert on(config(["--collector.disable-defaults", "--collector.cpu"])) == {"cpu"}
    env = {"OTEL_BARE_METAL_COLLECTOR_DISABLE_DEFAULTS": "true", "OTEL_BARE_METAL_COLLECTOR_FILESYSTEM": "true"}
    assert on(config([], env)) == {"filesystem"}
    # A flag on the command line still wins over the environment.
    assert on(config(["--no-collector.filesystem", "--collector.hdhomerun"], env)) == {"hdhomerun"}


def test_collector_flags_land_in_config():
    c = config(["--collector.filesystem.mount-timeout=1.5", "--hdhomerun.device=127.0.0.1"])
    assert c.options["filesystem"].mount_timeout == 1.5 and c.options["hdhomerun"].devices == ("127.0.0.1",)
    assert c.paths().procfs == PROC


def test_a_bad_collector_flag_is_a_usage_error():
    with pytest.raises(ConfigError, match="mount-points-exclude"):
        config(["--collector.filesystem.mount-points-exclude=("])


# ------------------------------------------------------------------ plugins


class EntryPoint:
    """Stands in for importlib.metadata.EntryPoint (the real path is tests/e2e/test_plugin.py)."""

    def __init__(self, name, load):
        self.name, self.value, self._load = name, f"fake:{name}", load

    def load(self):
        return self._load()


def plugin_spec(name="extra", metric="extra.value", flags=()):
    m = Metric(metric, Kind.GAUGE, "1", "An extra figure.", (), name)

    class Obs:
        def __init__(self, collector):
            self.c = collector

        def observers(self):
            return {m: lambda: [Observation(self.c.result)]}

    return CollectorSpec(name, source=lambda paths, options: type("S", (), {"read": lambda self: 7})(),
                         observers=Obs, metrics=(m,), flags=flags)


def test_broken_plugins_are_skipped_with_a_reason_and_good_ones_kept():
    def fails():
        raise ImportError("No module named 'missing_dependency'")

    eps = [
        EntryPoint("broken", fails),
        EntryPoint("notaspec", lambda: object()),
        EntryPoint("cpu", lambda: plugin_spec("cpu", "other.metric")),
        EntryPoint("clash", lambda: plugin_spec("clash", "system.cpu.time")),
        EntryPoint("badflag", lambda: plugin_spec("badflag", "b.v", (Flag("--web.other", "", "x"),))),
        EntryPoint("extra", lambda: plugin_spec()),
        EntryPoint("factory", lambda: (lambda: plugin_spec("factory", "factory.value"))),
    ]
    specs, problems = load_plugins(registry().specs[:3], eps)
    assert [s.name for s in specs] == ["extra", "factory"]
    assert all(s.plugin for s in specs)
    text = "\n".join(f"{p} {p.fields}" for p in problems)
    assert len(problems) == 5
    for needle in ("'broken'", "missing_dependency", "'notaspec'", "not an otel_bare_metal.registry.CollectorSpec",
                   "'cpu' exists already", "system.cpu.time", "--collector.badflag."):
        assert needle in text


def test_a_plugin_whose_source_factory_raises_is_left_out(caplog):
    from otel_bare_metal.app import build_collectors

    def broken(paths, options):
        raise OSError("no such sensor")

    bad = replace(plugin_spec("sensor", "sensor.value"), source=broken, plugin="otel-bare-metal-sensor")
    reg = Registry([registry().get("cpu"), bad])
    with caplog.at_level("ERROR"):
        collectors = build_collectors(Config(procfs=PROC, collectors={"cpu": True, "sensor": True}), reg)
    assert [c.name for c in collectors] == ["cpu"]
    text = log_text(caplog.records)
    assert 'msg="collector plugin skipped: its source factory failed"' in text
    assert "plugin=sensor distribution=otel-bare-metal-sensor" in text and "no such sensor" in text
    # A built-in collector's factory failing is a bug: it is not hidden.
    reg = Registry([replace(registry().get("cpu"), source=broken)])
    with pytest.raises(OSError):
        build_collectors(Config(procfs=PROC, collectors={"cpu": True}), reg)
