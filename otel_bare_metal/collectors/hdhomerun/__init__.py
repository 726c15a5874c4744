"""The hdhomerun collector: tuner status of the configured HDHomeRun devices, all at once.

``fleet.py`` reads the devices through the protocol library ``otel_bare_metal.hdhr``
(OpenTelemetry-free), ``metrics.py`` holds its rows and their observers, ``probe.py`` and
``allowlist.py`` serve ``/probe``; this module declares the collector and its flags.

Its flags also serve ``/probe`` (the timeout, and which targets it may dial); the collector
itself runs only when at least one device is configured or discovered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from otel_bare_metal.collectors.hdhomerun.allowlist import DEFAULT_RULES, Allowlist, parse_rule
from otel_bare_metal.collectors.hdhomerun.fleet import Fleet
from otel_bare_metal.collectors.hdhomerun.metrics import METRICS, HDHomeRunObservers
from otel_bare_metal.collectors.hdhomerun.probe import Probe, ProbeTargets
from otel_bare_metal.hdhr import discover, parse_address
from otel_bare_metal.registry import CollectorSpec, Paths, Route, RouteContext, option

log = logging.getLogger(__name__)


def _device(text: str) -> str:
    parse_address(text)  # a ValueError says what is wrong
    return text.strip()


def _rule(text: str) -> str:
    parse_rule(text)
    return text.strip()


@dataclass(frozen=True)
class HDHomeRunOptions:
    devices: tuple[str, ...] = option(
        "--hdhomerun.device", (), "HDHomeRun device to collect, host or host:port (repeatable; env: comma-separated).",
        metavar="DEVICE", parse=_device)
    devices_file: str = option(
        "--hdhomerun.devices-file", "", "File listing HDHomeRun devices, one address per line (# comments).",
        metavar="PATH")
    discover: bool = option(
        "--hdhomerun.discover", False, "Add the HDHomeRun devices that answer a broadcast discover at start.")
    timeout: float = option("--hdhomerun.timeout", 2.5, "How long one HDHomeRun device may take per collection.")
    allow_targets: tuple[str, ...] = option(
        "--hdhomerun.allow-target", (), "Networks /probe may dial: NETWORK[/PREFIX][:PORT|:*] (repeatable; "
        "default: loopback and private ranges on port 65001).", metavar="NETWORK", parse=_rule)


def discovered_devices() -> list[str]:
    """Devices that answer a broadcast discover on the local network (``--hdhomerun.discover``)."""
    try:
        found = discover(None, allow_broadcast=True)
    except OSError as e:
        log.warning("HDHomeRun discovery failed: %s", e)
        return []
    log.info("HDHomeRun discovery found %d device(s)", len(found))
    return [d.ip for d in found]


def _source(paths: Paths, options: HDHomeRunOptions):
    devices = list(options.devices)
    if options.discover:
        devices += discovered_devices()
    return Fleet(devices, options.timeout) if devices else None


def _check(paths: Paths, options: HDHomeRunOptions, enabled: bool) -> HDHomeRunOptions:
    """Read --hdhomerun.devices-file into the device list; check every address and allow rule."""
    devices = list(options.devices)
    path = options.devices_file
    if path:
        try:
            with open(path) as f:
                devices += [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]
        except (OSError, ValueError) as e:  # ValueError: a NUL in the path, or text that is not UTF-8
            raise ValueError(f"--hdhomerun.devices-file {path!r}: {getattr(e, 'strerror', None) or e}") from None
    for device in devices:
        parse_address(device)
    options = replace(options, devices=tuple(devices))
    allowlist(options)  # a bad rule is a ValueError naming it
    return options


def allowlist(options: HDHomeRunOptions) -> Allowlist:
    """The targets /probe may dial: the --hdhomerun.allow-target rules (default: loopback and
    private ranges on port 65001), and the configured devices whatever they resolve to."""
    return Allowlist(list(options.allow_targets) or list(DEFAULT_RULES), configured=list(options.devices))


def _routes(context: RouteContext) -> list[Route]:
    """``/probe?target=`` (and hdhomerun_exporter's ``/metrics?target=``), served whether or
    not the collector itself runs."""
    options: HDHomeRunOptions = context.options
    targets = ProbeTargets(options.timeout, context.resource, page=context.page, naming=context.naming)
    probe = Probe(allowlist(options), targets)
    return [Route("/probe", probe, title="Probe an HDHomeRun device", example="/probe?target=127.0.0.1",
                  metrics_param="target", close=probe.close)]


COLLECTOR = CollectorSpec(
    name="hdhomerun",
    source=_source,
    observers=HDHomeRunObservers,
    metrics=METRICS,
    options=HDHomeRunOptions,
    title="HDHomeRun tuners (`--hdhomerun.device`, `/probe`)",
    check=_check,
    routes=_routes,
)
