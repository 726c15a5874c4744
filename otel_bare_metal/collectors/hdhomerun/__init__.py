"""The hdhomerun collector: tuner status of the configured HDHomeRun devices, all at once.

``fleet.py`` reads the devices through the protocol library ``otel_bare_metal.hdhr``
(OpenTelemetry-free), ``metrics.py`` holds its rows and their observers, ``probe.py`` and
``allowlist.py`` serve ``/probe``; this module declares the collector and its flags.

Its flags also serve ``/probe`` (the timeout, and which targets it may dial); the collector
itself runs only when at least one device is configured or discovered.
"""

from __future__ import annotations

import logging

from otel_bare_metal.collectors.hdhomerun.allowlist import DEFAULT_RULES, Allowlist
from otel_bare_metal.collectors.hdhomerun.fleet import Fleet
from otel_bare_metal.collectors.hdhomerun.metrics import METRICS, HDHomeRunObservers
from otel_bare_metal.collectors.hdhomerun.probe import Probe, ProbeTargets
from otel_bare_metal.hdhr import discover, parse_address
from otel_bare_metal.registry import CollectorSpec, Flag, Options, Paths, Route, RouteContext

log = logging.getLogger(__name__)

FLAGS = (
    Flag("--hdhomerun.device", [], "HDHomeRun device to collect, host or host:port (repeatable; env: comma-separated).",
         field="hdhomerun_devices"),
    Flag("--hdhomerun.devices-file", "", "File listing HDHomeRun devices, one address per line (# comments).",
         field="hdhomerun_devices_file"),
    Flag("--hdhomerun.discover", False, "Add the HDHomeRun devices that answer a broadcast discover at start.",
         field="hdhomerun_discover"),
    Flag("--hdhomerun.timeout", 2.5, "Seconds one HDHomeRun device may take per collection.", field="hdhomerun_timeout"),
    Flag("--hdhomerun.allow-target", [], "Networks /probe may dial: NETWORK[/PREFIX][:PORT|:*] (repeatable; "
         "default: loopback and private ranges on port 65001).", field="hdhomerun_allow_targets"),
)


def discovered_devices() -> list[str]:
    """Devices that answer a broadcast discover on the local network (``--hdhomerun.discover``)."""
    try:
        found = discover(None, allow_broadcast=True)
    except OSError as e:
        log.warning("HDHomeRun discovery failed: %s", e)
        return []
    log.info("HDHomeRun discovery found %d device(s)", len(found))
    return [d.ip for d in found]


def _source(paths: Paths, options: Options):
    devices = list(options["hdhomerun_devices"])
    if options["hdhomerun_discover"]:
        devices += discovered_devices()
    return Fleet(devices, options["hdhomerun_timeout"]) if devices else None


def _check(paths: Paths, options: dict, enabled: bool) -> None:
    """Read --hdhomerun.devices-file into the device list; check every address and allow rule."""
    devices = list(options["hdhomerun_devices"])
    path = options["hdhomerun_devices_file"]
    if path:
        try:
            with open(path) as f:
                devices += [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]
        except OSError as e:
            raise ValueError(f"--hdhomerun.devices-file {path!r}: {e.strerror or e}") from None
    for device in devices:
        parse_address(device)
    options["hdhomerun_devices"] = devices
    allowlist(options)  # a bad rule is a ValueError naming the flag


def allowlist(options: Options) -> Allowlist:
    """The targets /probe may dial: the --hdhomerun.allow-target rules (default: loopback and
    private ranges on port 65001), and the configured devices whatever they resolve to."""
    return Allowlist(list(options["hdhomerun_allow_targets"]) or DEFAULT_RULES, configured=options["hdhomerun_devices"])


def _routes(context: RouteContext) -> list[Route]:
    """``/probe?target=`` (and hdhomerun_exporter's ``/metrics?target=``), served whether or
    not the collector itself runs."""
    options = context.options
    targets = ProbeTargets(options["hdhomerun_timeout"], context.resource, page=context.page, naming=context.naming)
    probe = Probe(allowlist(options), targets)
    return [Route("/probe", probe, title="Probe an HDHomeRun device", example="/probe?target=127.0.0.1",
                  metrics_param="target", close=probe.close)]


COLLECTOR = CollectorSpec(
    name="hdhomerun",
    source=_source,
    observers=HDHomeRunObservers,
    metrics=METRICS,
    flags=FLAGS,
    title="HDHomeRun tuners (`--hdhomerun.device`, `/probe`)",
    check=_check,
    routes=_routes,
)
