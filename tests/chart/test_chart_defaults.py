"""The chart's defaults are the exporter's: each value that is passed to the exporter as a flag
defaults to what the exporter itself resolves with no flags and an empty environment
(config.load([], {}, registry)), so installing the chart with no values runs the exporter as
`otel-bare-metal` with no flags would, and the two cannot drift apart."""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest
import yaml

from chart_support import CHART_DIR
from otel_bare_metal import config
from otel_bare_metal.registry import registry

VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
DEFAULTS = config.load([], {}, registry())


def _option(collector: str, name: str) -> Callable[[], Any]:
    return lambda: getattr(DEFAULTS.options[collector], name)


# values.yaml key → (the flag it is passed as, the exporter's resolved default)
PAIRS: dict[str, tuple[str, Callable[[], Any]]] = {
    "logLevel": ("--log.level", lambda: DEFAULTS.log_level),
    "logFormat": ("--log.format", lambda: DEFAULTS.log_format),
    "telemetryPath": ("--web.telemetry-path", lambda: DEFAULTS.telemetry_path),
    "metricsNaming": ("--metrics.naming", lambda: DEFAULTS.naming),
    "otlp.protocol": ("--otlp.protocol", lambda: DEFAULTS.otlp_protocol),
    "collectors.cpu": ("--collector.cpu", lambda: DEFAULTS.collectors["cpu"]),
    "collectors.filesystem.enabled": ("--collector.filesystem", lambda: DEFAULTS.collectors["filesystem"]),
    "collectors.filesystem.mountTimeout": ("--collector.filesystem.mount-timeout", _option("filesystem", "mount_timeout")),
    "hdhomerun.devices": ("--hdhomerun.device", lambda: list(DEFAULTS.options["hdhomerun"].devices)),
    "hdhomerun.discover": ("--hdhomerun.discover", _option("hdhomerun", "discover")),
    "hdhomerun.discoverAddresses": ("--hdhomerun.discover-address",
                                    lambda: list(DEFAULTS.options["hdhomerun"].discover_addresses)),
    "hdhomerun.timeout": ("--hdhomerun.timeout", _option("hdhomerun", "timeout")),
    "hdhomerun.allowTargets": ("--hdhomerun.allow-target", lambda: list(DEFAULTS.options["hdhomerun"].allow_targets)),
}
# Values whose "" means "the exporter's own default": the chart then passes nothing.
EMPTY_MEANS_EXPORTER_DEFAULT = {"collectors.filesystem.fsTypesExclude": "--collector.filesystem.fs-types-exclude"}
# Deliberately different, and documented in the chart README ("Defaults"): the pod volumes every
# Kubernetes node has are added to node_exporter's mount-point excludes (tests/chart/test_chart_edge.py).
DELIBERATE = {"collectors.filesystem.mountPointsExclude": "--collector.filesystem.mount-points-exclude"}
# Flags the chart sets from values that are not defaults of the exporter (ports, paths, mounts).
NOT_DEFAULTS = {"--web.listen-address", "--web.config.file", "--path.rootfs", "--path.procfs", "--path.sysfs"}


def value(path: str) -> Any:
    node: Any = VALUES
    for key in path.split("."):
        node = node[key]
    return node


@pytest.mark.parametrize("path", sorted(PAIRS))
def test_value_defaults_to_the_exporters_default(path):
    flag, resolved = PAIRS[path]
    assert value(path) == resolved(), f"values.yaml {path}: {value(path)!r}, but the exporter's {flag} is {resolved()!r}"


def test_port_is_the_default_listen_port():
    (address,) = DEFAULTS.listen_address
    assert address == f":{VALUES['port']}"


def test_empty_means_the_exporters_default(render):
    for path in EMPTY_MEANS_EXPORTER_DEFAULT:
        assert value(path) == ""
    data = render({}).one("ConfigMap")["data"]
    assert not any(k.endswith("FS_TYPES_EXCLUDE") for k in data), "an empty value must pass nothing"


def test_every_flag_shaped_value_is_covered():
    """A value documented as a flag (`(--x.y)` in values.yaml) is in one of the tables above."""
    documented = set(re.findall(r"\((--[a-z][\w.-]+)", (CHART_DIR / "values.yaml").read_text()))
    covered = {flag for flag, _ in PAIRS.values()} | set(EMPTY_MEANS_EXPORTER_DEFAULT.values()) | \
        set(DELIBERATE.values()) | NOT_DEFAULTS
    assert documented - covered == set(), f"values for flags without a default check: {sorted(documented - covered)}"
    assert len(documented) >= 8
