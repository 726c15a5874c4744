"""Fixtures for the Helm chart tests; constants and helpers live in chart_support.py."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from chart_support import CHART_DIR, NAMESPACE, RELEASE, SCENARIOS, Rendered, helm, scenario_values


@pytest.fixture(scope="session")
def chart():
    with helm.Chart.load(str(CHART_DIR)) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart) -> Callable[..., Rendered]:
    """render(values) -> Rendered; raises helm_python.HelmError like ``helm template`` fails."""

    def _render(values: dict[str, Any] | None = None) -> Rendered:
        return Rendered(chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True))

    return _render


@pytest.fixture(scope="session")
def rendered_scenarios(render) -> dict[str, Rendered]:
    return {name: render(scenario_values(name)) for name in SCENARIOS}


@pytest.fixture(scope="session")
def default_render(render) -> Rendered:
    return render({})

