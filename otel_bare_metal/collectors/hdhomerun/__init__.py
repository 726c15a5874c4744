"""The hdhomerun collector: tuner status of the configured HDHomeRun devices, all at once.

``fleet.py`` reads the devices through the protocol library ``otel_bare_metal.hdhr``
(OpenTelemetry-free), ``metrics.py`` holds its rows and their observers, ``probe.py`` and
``allowlist.py`` serve ``/probe``; this module declares the collector and its flags.

Its flags also serve ``/probe`` (the timeout, and which targets it may dial); the collector
itself runs only when at least one device is configured or discovered.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace

from otel_bare_metal.collectors.hdhomerun.allowlist import DEFAULT_RULES, Allowlist, parse_rule
from otel_bare_metal.collectors.hdhomerun.fleet import Device, Fleet, device_name, locator
from otel_bare_metal.collectors.hdhomerun.metrics import METRICS, HDHomeRunObservers
from otel_bare_metal.collectors.hdhomerun.probe import DEFAULT_MAX_PROBES, Probe, ProbeTargets
from otel_bare_metal.hdhr import discover, format_address, parse_address
from otel_bare_metal.logutil import fields
from otel_bare_metal.registry import CollectorSpec, Paths, Route, RouteContext, option

log = logging.getLogger(__name__)


def _device(text: str) -> str:
    device_name(text)  # a malformed address, a refused zone id or a device id with a wrong check digit
    return text.strip()


def _address(text: str) -> str:
    parse_address(text)  # a ValueError says what is wrong
    return text.strip()


def _count(text: str) -> int:
    """A whole number >= 0 (``--hdhomerun.max-probes``)."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative: {text!r}")
    return value


def _rule(text: str) -> str:
    parse_rule(text)
    return text.strip()


@dataclass(frozen=True)
class HDHomeRunOptions:
    devices: tuple[str, ...] = option(
        "--hdhomerun.device", (), "HDHomeRun device to collect: host, host:port or its 8-hex-digit device id, found by "
        "discovery (repeatable; env: comma-separated).", metavar="DEVICE", parse=_device)
    devices_file: str = option(
        "--hdhomerun.devices-file", "", "File listing HDHomeRun devices, one address or device id per line (# comments).",
        metavar="PATH")
    discover: bool = option(
        "--hdhomerun.discover", False, "Add the HDHomeRun devices that answer a discover request at start (broadcast, "
        "or sent to --hdhomerun.discover-address).")
    discover_addresses: tuple[str, ...] = option(
        "--hdhomerun.discover-address", (), "Send discover requests (--hdhomerun.discover, devices given by id) to this "
        "address instead of broadcasting (repeatable; env: comma-separated).", metavar="ADDRESS", parse=_address)
    timeout: float = option("--hdhomerun.timeout", 2.5, "How long one HDHomeRun device may take per collection.")
    max_probes: int = option(
        "--hdhomerun.max-probes", DEFAULT_MAX_PROBES, "Maximum number of parallel /probe requests, a budget apart from "
        "--web.max-requests so probes never take the room of a /metrics scrape; past it a probe gets 503 at once. "
        "Use 0 to disable.", metavar="N", parse=_count)
    allow_targets: tuple[str, ...] = option(
        "--hdhomerun.allow-target", (), "Networks /probe may dial: NETWORK[/PREFIX][:PORT|:*] (repeatable; "
        "default: loopback and private ranges on port 65001).", metavar="NETWORK", parse=_rule)


def discovered_devices(addresses: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Devices that answer a discover request (``--hdhomerun.discover``): broadcast on the local
    network, or sent to each of ``addresses`` (``--hdhomerun.discover-address``)."""
    found = []
    targets: list[str | None] = list(addresses) or [None]  # None: broadcast
    for target in targets:
        try:
            found += discover(target, allow_broadcast=target is None)
        except OSError as e:
            log.warning("HDHomeRun discovery failed", extra=fields(target=target or "broadcast", err=str(e)))
    log.info("HDHomeRun discovery done", extra=fields(
        devices=",".join(format_address(d.ip, d.port) for d in found) or "none", found=len(found)))
    return [format_address(d.ip, d.port) for d in found]


def _source(paths: Paths, options: HDHomeRunOptions):
    devices = list(options.devices)
    if options.discover:
        devices += discovered_devices(options.discover_addresses)
    if not devices:
        return None
    return Fleet(devices, options.timeout, device_factory=functools.partial(Device, locate=locator(list(options.discover_addresses))))


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
        try:
            device_name(device)  # a malformed address, a refused zone id or a device id with a wrong check digit
        except ValueError as e:
            raise ValueError(f"--hdhomerun.device {device.strip()!r}: {e}") from None
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
    targets = ProbeTargets(options.timeout, context.resource, page=context.page, naming=context.naming,
                           locate=locator(list(options.discover_addresses)))
    probe = Probe(allowlist(options), targets)
    return [Route("/probe", probe, title="Probe an HDHomeRun device", example="/probe?target=127.0.0.1",
                  metrics_param="target", close=probe.close, limit=options.max_probes, limit_name="probes")]


COLLECTOR = CollectorSpec(
    name="hdhomerun",
    source=_source,
    observers=HDHomeRunObservers,
    metrics=METRICS,
    options=HDHomeRunOptions,
    title="HDHomeRun tuners (`--hdhomerun.device`, `/probe`)",
    check=_check,
    describe=lambda options: {"devices": ",".join(options.devices) or "none"},
    routes=_routes,
)
