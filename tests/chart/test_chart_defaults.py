"""The chart's defaults are the exporter's: each value that maps to a flag has the default that
flag has in the registry (cli.all_flags(): the exporter-wide rows and every collector's), so
installing the chart with no values runs the exporter as `otel-bare-metal` with no flags would."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chart_support import CHART_DIR
from otel_bare_metal import cli
from otel_bare_metal.exposition import otlp

VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
FLAGS = {f.flag: f.default for f in cli.all_flags()}

# values.yaml key → the flag it is passed as (templates/*.yaml)
PAIRS = {
    "logLevel": "--log.level",
    "logFormat": "--log.format",
    "telemetryPath": "--web.telemetry-path",
    "metricsNaming": "--metrics.naming",
    "collectors.cpu": "--collector.cpu",
    "collectors.filesystem.enabled": "--collector.filesystem",
    "collectors.filesystem.mountTimeout": "--collector.filesystem.mount-timeout",
    "hdhomerun.devices": "--hdhomerun.device",
    "hdhomerun.discover": "--hdhomerun.discover",
    "hdhomerun.timeout": "--hdhomerun.timeout",
    "hdhomerun.allowTargets": "--hdhomerun.allow-target",
}
# Values whose "" means "the exporter's own default" (the chart then passes nothing).
EMPTY_MEANS_EXPORTER_DEFAULT = {"collectors.filesystem.fsTypesExclude": "--collector.filesystem.fs-types-exclude"}
# Deliberately different, and documented in the chart README ("Defaults"): the pod volumes every
# Kubernetes node has are added to node_exporter's mount-point excludes.
DELIBERATE = {"collectors.filesystem.mountPointsExclude": "--collector.filesystem.mount-points-exclude"}


def value(path: str) -> Any:
    node: Any = VALUES
    for key in path.split("."):
        node = node[key]
    return node


@pytest.mark.parametrize("path,flag", sorted(PAIRS.items()))
def test_value_defaults_to_the_flags_default(path, flag):
    assert flag in FLAGS, f"{flag} is not an exporter flag any more"
    assert value(path) == FLAGS[flag], f"values.yaml {path}: {value(path)!r}, but {flag} defaults to {FLAGS[flag]!r}"


def test_port_is_the_default_listen_port():
    (address,) = FLAGS["--web.listen-address"]
    assert address == f":{VALUES['port']}"


def test_otlp_protocol_is_the_exporters_default():
    """--otlp.protocol defaults to the environment, and without it to the specification's default."""
    assert FLAGS["--otlp.protocol"] == ""
    assert VALUES["otlp"]["protocol"] == otlp.protocol({}) == "http/protobuf"


@pytest.mark.parametrize("path,flag", sorted(EMPTY_MEANS_EXPORTER_DEFAULT.items()))
def test_empty_means_the_exporters_default(path, flag, render):
    assert value(path) == ""
    data = render({}).one("ConfigMap")["data"]
    assert not any(k.endswith("FS_TYPES_EXCLUDE") for k in data), "an empty value must pass nothing"


def test_every_flag_shaped_value_is_covered():
    """A value documented as a flag (`(--x.y)` in values.yaml) is in one of the tables above."""
    import re

    documented = set(re.findall(r"\((--[a-z][\w.-]+)", (CHART_DIR / "values.yaml").read_text()))
    covered = set(PAIRS.values()) | set(EMPTY_MEANS_EXPORTER_DEFAULT.values()) | set(DELIBERATE.values()) | {
        "--web.listen-address", "--web.config.file", "--path.rootfs", "--path.procfs", "--path.sysfs", "--log.format",
        "--metrics.naming", "--hdhomerun.device", "--hdhomerun.allow-target"}
    assert documented - covered == set(), f"values for flags without a default check: {sorted(documented - covered)}"
