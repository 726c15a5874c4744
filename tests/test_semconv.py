"""Semantic conventions: every metric name, attribute and cpu.mode value we emit is defined (and
not deprecated) by the conventions the installed opentelemetry-semantic-conventions package was
generated from, or is in a project namespace, or is a decision written down in docs/metrics.md
("Semantic conventions")."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from helpers import builtin_metrics
from otel_bare_metal.collectors.cpu.metrics import CPU_MODES
from otel_bare_metal.telemetry.resource import SCHEMA_URL

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
# Namespaces of our own (the naming rules: a project's names go in a namespace of its own).
PROJECT_NAMESPACES = ("hdhomerun.", "otel_bare_metal.")
METRICS = builtin_metrics()


def _conventions() -> dict[str, str]:
    """name → its docstring, for every metric and attribute constant the package defines."""
    out: dict[str, str] = {}
    for package in ("opentelemetry.semconv._incubating.metrics", "opentelemetry.semconv._incubating.attributes",
                    "opentelemetry.semconv.attributes", "opentelemetry.semconv.metrics"):
        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__):
            text = Path(importlib.import_module(f"{package}.{info.name}").__file__).read_text(encoding="utf-8")
            for name, doc in re.findall(r'^[A-Z0-9_]+: Final = "([^"]+)"\n"""\n?(.*?)"""', text, re.S | re.M):
                # the stable module's text wins over an incubating "Deprecated in favor of stable" alias
                if name not in out or out[name].startswith("Deprecated in favor of stable"):
                    out[name] = doc
    return out


CONVENTIONS = _conventions()


def _decided() -> str:
    text = DOC.read_text(encoding="utf-8")
    assert "## Semantic conventions" in text, "docs/metrics.md has no 'Semantic conventions' section"
    section = text.split("## Semantic conventions", 1)[1].split("\n## ", 1)[0]
    return section


def _defined(name: str) -> bool:
    doc = CONVENTIONS.get(name)
    return doc is not None and not re.match(r"Deprecated(?!: in favor of stable| in favor of stable)", doc)


def test_the_section_names_the_schema_url():
    assert f"`{SCHEMA_URL}`" in _decided()


def test_project_namespaces_are_no_convention_namespace():
    for name in CONVENTIONS:
        assert not name.startswith(PROJECT_NAMESPACES), name


@pytest.mark.parametrize("metric", [m for m in METRICS], ids=lambda m: m.name)
def test_metric_name_is_a_convention_ours_or_decided(metric):
    if metric.name.startswith(PROJECT_NAMESPACES) or _defined(metric.name):
        return
    assert f"`{metric.name}`" in _decided(), f"{metric.name}: not in the conventions and no decision in docs/metrics.md"


@pytest.mark.parametrize("attribute", sorted({a for m in METRICS for a in m.attributes}))
def test_attribute_is_a_convention_ours_or_decided(attribute):
    if attribute.startswith(PROJECT_NAMESPACES) or _defined(attribute):
        return
    decided = _decided()
    assert f"`{attribute}`" in decided or f"`…{attribute.rsplit('.', 1)[-1]}`" in decided, \
        f"attribute {attribute}: not in the conventions and no decision in docs/metrics.md"


def test_cpu_mode_values_are_conventions_or_decided():
    from opentelemetry.semconv._incubating.attributes.cpu_attributes import CpuModeValues

    values = {v.value for v in CpuModeValues if not (v.__doc__ or "").startswith("Deprecated")}
    values -= {"kernel"}  # deprecated: replaced by system
    for ours in set(CPU_MODES.values()) - values:
        assert f"`cpu.mode` value `{ours}`" in _decided(), f"cpu.mode {ours}: no decision in docs/metrics.md"


def test_opt_in_per_cpu_attribute_is_decided():
    """cpu.logical_number is opt-in on system.cpu.time in the conventions; we always set it."""
    assert "cpu.logical_number" in next(m for m in METRICS if m.name == "system.cpu.time").attributes
    assert "`cpu.logical_number` on `system.cpu.time`" in _decided()


def test_resource_keys_are_current():
    from otel_bare_metal.telemetry.resource import build_resource

    attributes = build_resource({"K8S_NODE_NAME": "n", "K8S_POD_NAME": "p"}).attributes
    for key in attributes:
        assert _defined(key), f"resource attribute {key} is not a current convention"
