"""Fixtures for the monitoring tests; the PromQL scanner lives in monitoring_support.py."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from monitoring_support import MONITORING, PROMETHEUS_SERIES


@pytest.fixture(scope="session")
def exported_names() -> set[str]:
    from helpers import builtin_metrics

    METRICS = builtin_metrics()

    return {m.prometheus_name for m in METRICS if not m.classic_only} | PROMETHEUS_SERIES  # OTel mode


@pytest.fixture(scope="session")
def alerts() -> dict:
    return yaml.safe_load((MONITORING / "alerts.yml").read_text())


@pytest.fixture(scope="session")
def alert_tests() -> dict:
    return yaml.safe_load((MONITORING / "alerts_test.yml").read_text())


@pytest.fixture(scope="session")
def dashboard() -> dict:
    return json.loads((MONITORING / "dashboard.json").read_text())


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: install Debian's prometheus package (scripts/test does)"
    return path


# ---------------------------------------------------------------------------- classic naming variant


@pytest.fixture(scope="session")
def classic_exported_names() -> set[str]:
    from monitoring_support import CLASSIC_PROMETHEUS_SERIES, classic_names

    return classic_names() | CLASSIC_PROMETHEUS_SERIES


@pytest.fixture(scope="session")
def classic_alerts() -> dict:
    return yaml.safe_load((MONITORING / "alerts-classic.yml").read_text())


@pytest.fixture(scope="session")
def classic_alert_tests() -> dict:
    return yaml.safe_load((MONITORING / "alerts-classic_test.yml").read_text())


@pytest.fixture(scope="session")
def classic_dashboard() -> dict:
    return json.loads((MONITORING / "dashboard-classic.json").read_text())
