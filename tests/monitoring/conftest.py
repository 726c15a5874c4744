"""Fixtures for the monitoring tests; the PromQL scanner lives in monitoring_support.py."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

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


# ---------------------------------------------------------------------------- both variants, one test


@dataclass(frozen=True)
class Variant:
    """One naming variant's files and the names its queries are written against."""

    name: str
    alerts_file: str
    alert_tests_file: str
    dashboard_file: str
    forecast: str  # how FilesystemPredictedFull's expression starts its predict_linear
    cpu_by_mode: tuple[str, str]  # the CPU panel's metric and its grouping
    hdhomerun_panels: tuple[tuple[str, str], ...]  # (panel title, metric) per device and tuner
    device_matcher: str  # how a per-device panel selects the dashboard's $device
    tuner_legend: tuple[str, ...]  # what such a panel's legend must name

    def load(self, file: str):
        text = (MONITORING / file).read_text()
        return json.loads(text) if file.endswith(".json") else yaml.safe_load(text)


VARIANTS = (
    Variant("otel", "alerts.yml", "alerts_test.yml", "dashboard.json", "predict_linear(",
            ("system_cpu_time_seconds_total", "by (cpu_mode)"),
            (("Signal strength", "hdhomerun_tuner_signal_strength_ratio"),
             ("Signal-to-noise", "hdhomerun_tuner_signal_to_noise_quality_ratio"),
             ("Symbol quality", "hdhomerun_tuner_symbol_quality_ratio"),
             ("Transport and CRC errors", "hdhomerun_tuner_crc_errors_total"),
             ("Transport and CRC errors", "hdhomerun_tuner_transport_errors_total")),
            'hdhomerun_device=~"$device"', ("{{hdhomerun_device}}", "{{hdhomerun_tuner}}")),
    # /probe has no device label in classic mode: the instance names the device there.
    Variant("classic", "alerts-classic.yml", "alerts-classic_test.yml", "dashboard-classic.json",
            "predict_linear(node_filesystem_avail_bytes",
            ("node_cpu_seconds_total", "by (mode)"),
            (("Signal strength", "hdhomerun_tuner_signal_strength_ratio"),
             ("Signal-to-noise", "hdhomerun_tuner_signal_to_noise_ratio"),
             ("Symbol quality", "hdhomerun_tuner_symbol_error_ratio"),
             ("Transport and CRC errors", "hdhomerun_tuner_crc_errors_total"),
             ("Transport and CRC errors", "hdhomerun_tuner_transport_errors_total")),
            'device=~"$device"', ("{{instance}}", "{{device}}", "{{tuner}}")),
)


@pytest.fixture(params=VARIANTS, ids=[v.name for v in VARIANTS])
def variant(request) -> Variant:
    return request.param
