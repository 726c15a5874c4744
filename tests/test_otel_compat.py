"""Every private OpenTelemetry API we rely on still behaves as otel_bare_metal/_otel_compat.py
says, and nothing outside that module touches one.  A failure here names what changed upstream."""

from __future__ import annotations

import ast
import inspect

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData, PeriodicExportingMetricReader

from helpers import ROOT
from otel_bare_metal import _otel_compat as compat

# Private names of OpenTelemetry objects we use; only _otel_compat.py may mention them.
PRIVATE_ATTRIBUTES = {"_receive_metrics", "_export_interval_millis", "_export_timeout_millis",
                      "_translate_to_prometheus", "_mapping"}
COMPAT = ROOT / "otel_bare_metal" / "_otel_compat.py"
CHECKED = sorted((ROOT / "otel_bare_metal").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))


def _changed(what: str, package: str = "opentelemetry-exporter-prometheus") -> str:
    return compat.upstream_changed(what, package, "")


@pytest.mark.parametrize("path", [p for p in CHECKED if p != COMPAT], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_opentelemetry_api_outside_the_compat_module(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("opentelemetry"):
            parts = node.module.split(".")
            assert not any(p.startswith("_") for p in parts), f"{path}:{node.lineno} imports private {node.module}"
            assert not any(a.name.startswith("_") for a in node.names), f"{path}:{node.lineno} imports a private name"
        if isinstance(node, ast.Attribute):
            assert node.attr not in PRIVATE_ATTRIBUTES, f"{path}:{node.lineno} uses .{node.attr}; go through _otel_compat"


def test_the_scan_sees_the_compat_module_use_them():
    text = COMPAT.read_text()
    assert all(name in text for name in PRIVATE_ATTRIBUTES)


def test_mapping_functions_translate_as_the_reader_does():
    assert compat.sanitize_full_name("system.cpu.time") == "system_cpu_time", _changed("_mapping.sanitize_full_name changed")
    assert compat.sanitize_attribute("cpu.mode") == "cpu_mode", _changed("_mapping.sanitize_attribute changed")
    assert compat.map_unit("s") == "seconds" and compat.map_unit("By") == "bytes" and compat.map_unit("1") == "", \
        _changed("_mapping.map_unit changed its unit table")


def test_receive_hook_is_called_with_each_collection():
    owner, name = compat.RECEIVE_HOOK
    assert name in vars(owner), _changed(f"MetricReader no longer defines {name}; the collection hook moved", "opentelemetry-sdk")
    params = list(inspect.signature(getattr(owner, name)).parameters)
    assert params[:3] == ["self", "metrics_data", "timeout_millis"], _changed(f"MetricReader.{name} signature is now {params}", "opentelemetry-sdk")
    seen: list = []

    class Reader(compat.HookedPrometheusReader):
        def on_collect(self, data):
            seen.append(data)
            return None

    reader = Reader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("t").create_observable_gauge("g", callbacks=[lambda o: [Observation(1)]])
    reader.collect()
    provider.shutdown()
    assert len(seen) == 1 and isinstance(seen[0], MetricsData), \
        _changed("MetricReader.collect no longer hands its MetricsData to _receive_metrics", "opentelemetry-sdk")


def test_hooked_reader_passes_data_on_to_the_stock_registry():
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    reader = compat.HookedPrometheusReader(registry=registry, disable_target_info=True, scope_info_enabled=False)
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("t").create_observable_gauge("g", callbacks=[lambda o: [Observation(7)]])
    body = generate_latest(registry)
    provider.shutdown()
    assert b"g 7.0" in body, _changed("PrometheusMetricReader no longer renders what _receive_metrics receives")


def test_periodic_reader_exposes_interval_and_timeout(monkeypatch):
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1234")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_TIMEOUT", "567")
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    reader = PeriodicExportingMetricReader(ConsoleMetricExporter())
    try:
        assert compat.export_interval_millis(reader) == 1234
        assert compat.export_timeout_millis(reader) == 567
    finally:
        reader.shutdown()


def test_a_missing_private_attribute_fails_with_a_message_naming_the_change():
    with pytest.raises(AttributeError, match="no _export_interval_millis.*Update otel_bare_metal/_otel_compat.py"):
        compat.export_interval_millis(InMemoryMetricReader())


def test_stock_translation_step_for_the_benchmark():
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    reader = PrometheusMetricReader(disable_target_info=True)
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory, reader])
    provider.get_meter("t").create_observable_counter("c", callbacks=[lambda o: [Observation(2)]])
    families: dict = {}
    compat.translate_to_prometheus(reader, memory.get_metrics_data(), families)
    provider.shutdown()
    assert any(f.name == "c" for f in families.values()), _changed("_collector._translate_to_prometheus changed")


def test_pyproject_bounds_the_opentelemetry_packages_below_the_next_minor():
    import re
    from importlib.metadata import version

    text = (ROOT / "pyproject.toml").read_text()
    for package in ("opentelemetry-sdk", "opentelemetry-exporter-prometheus", "opentelemetry-exporter-otlp"):
        spec = re.search(rf'"{package}([^"]*)"', text)
        assert spec, f"{package} missing from pyproject.toml"
        upper = re.search(r"<\s*([0-9.]+)", spec.group(1))
        assert upper, f"{package} has no upper bound: {spec.group(1)}"
        installed = version(package)
        major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", installed).groups())
        assert upper.group(1) in (f"{major}.{minor + 1}", f"{major}.{minor + 1}.0"), \
            f"{package}: tested {installed}, bound <{upper.group(1)}; bound it at the next minor release"
