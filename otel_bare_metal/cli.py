"""The ``otel-bare-metal`` command line, in node_exporter's style.

``otel-bare-metal [FLAGS]`` serves metrics.  Every flag can also be set through the environment:
``--web.listen-address`` is ``OTEL_BARE_METAL_WEB_LISTEN_ADDRESS`` (upper case, ``.`` and ``-``
become ``_``); a flag on the command line wins over the environment.  Boolean flags take
``true``/``false`` in the environment.

Small tools that try each API by hand (as the talk this project grew from does):
``otel-bare-metal cpustat``, ``otel-bare-metal statfs PATH``, ``otel-bare-metal hdhomerun …``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Mapping, Sequence

from otel_bare_metal import __version__

PROG = "otel-bare-metal"
ENV_PREFIX = "OTEL_BARE_METAL_"


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").upper().replace(".", "_").replace("-", "_")


class UsageError(Exception):
    """A bad flag or value: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, never the usage block or a traceback
        raise UsageError(message)


def _bool(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"environment variable {name}={text!r}: want true or false")


def _positive_float(text: str) -> float:
    try:
        value = float(text.rstrip("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


# (flag, default, help) — the environment variable is derived from the flag.
SERVE_FLAGS: list[tuple[str, object, str]] = [
    ("--web.listen-address", ":9464", "Address to listen on for the web interface and telemetry."),
    ("--web.telemetry-path", "/metrics", "Path under which to expose metrics."),
    ("--timeout-offset", 0.5, "Seconds to subtract from Prometheus's X-Prometheus-Scrape-Timeout-Seconds "
     "(blackbox_exporter's flag; without the header a scrape may take 10 s less this)."),
    ("--web.config.file", "", "Path to a web configuration file (exporter-toolkit format) for TLS and basic auth."),
    ("--path.procfs", "/proc", "procfs mountpoint."),
    ("--path.sysfs", "/sys", "sysfs mountpoint."),
    ("--path.rootfs", "/", "rootfs mountpoint (the host's / when running in a container)."),
    ("--collector.cpu", True, "Enable the cpu collector."),
    ("--collector.filesystem", True, "Enable the filesystem collector."),
    ("--collector.filesystem.mount-points-exclude", None, "Regexp of mount points to exclude."),
    ("--collector.filesystem.fs-types-exclude", None, "Regexp of filesystem types to exclude."),
    ("--collector.filesystem.mount-points-include", "", "Regexp of mount points to include (default: all)."),
    ("--collector.filesystem.fs-types-include", "", "Regexp of filesystem types to include (default: all)."),
    ("--collector.filesystem.mount-timeout", 5.0, "Seconds to wait for statfs on a mount before marking it hung."),
    ("--hdhomerun.device", [], "HDHomeRun device to collect, host or host:port (repeatable; env: comma-separated)."),
    ("--hdhomerun.devices-file", "", "File listing HDHomeRun devices, one address per line (# comments)."),
    ("--hdhomerun.discover", False, "Add the HDHomeRun devices that answer a broadcast discover at start."),
    ("--hdhomerun.timeout", 2.5, "Seconds one HDHomeRun device may take per collection."),
    ("--hdhomerun.allow-target", [], "Networks /probe may dial: NETWORK[/PREFIX][:PORT|:*] (repeatable; "
     "default: loopback and private ranges on port 65001)."),
    ("--otlp.endpoint", "", "Push OTLP to this endpoint (else OTEL_EXPORTER_OTLP_ENDPOINT / _METRICS_ENDPOINT)."),
    ("--otlp.protocol", "", "grpc or http/protobuf (else OTEL_EXPORTER_OTLP_PROTOCOL; default http/protobuf)."),
    ("--metrics.naming", "otel", "otel (semantic conventions) or classic (node_exporter and hdhomerun_exporter names)."),
    ("--metrics.scope-labels", False, "Add otel_scope_name/version labels to every sample (doubles the payload)."),
    ("--log.level", "info", "Only log messages with the given severity or above: debug, info, warn, error."),
]


def serve_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    from otel_bare_metal.sources.filesystem import DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE

    defaults = {
        "--collector.filesystem.mount-points-exclude": DEFAULT_MOUNT_POINTS_EXCLUDE,
        "--collector.filesystem.fs-types-exclude": DEFAULT_FS_TYPES_EXCLUDE,
    }
    p = _Parser(
        prog=PROG,
        description="Export CPU, filesystem and HDHomeRun metrics through OpenTelemetry. "
        f"Subcommands: cpustat, statfs PATH, hdhomerun. Every flag is also read from {ENV_PREFIX}<FLAG>.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    for flag, default, help_text in SERVE_FLAGS:
        default = defaults.get(flag, default)
        var = env_name(flag)
        dest = flag.lstrip("-").replace(".", "_").replace("-", "_")
        if isinstance(default, list):
            value = [v.strip() for v in environ.get(var, "").split(",") if v.strip()]
            p.add_argument(flag, dest=dest, action="append", default=None, metavar="VALUE", help=f"{help_text} [{var}]")
            p.set_defaults(**{dest + "_env": value})
            continue
        if isinstance(default, bool):
            value = _bool(environ[var], var) if var in environ else default
            p.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=value, help=f"{help_text} [{var}]")
            continue
        value = environ.get(var, default)
        kind = _positive_float if isinstance(default, float) else str
        if isinstance(value, str) and kind is _positive_float:
            try:
                value = _positive_float(value)
            except argparse.ArgumentTypeError as e:
                raise UsageError(f"environment variable {var}: {e}") from None
        choices = {"--log.level": ["debug", "info", "warn", "error"], "--metrics.naming": ["otel", "classic"]}.get(flag)
        p.add_argument(flag, dest=dest, type=kind, default=value, choices=choices, metavar=flag.split(".")[-1].upper().replace("-", "_"), help=f"{help_text} [{var}]")
    return p


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]):
    from otel_bare_metal.app import Config
    from otel_bare_metal.exposition.http import parse_listen_address
    from otel_bare_metal.exposition.otlp import protocol, selected_exporters
    from otel_bare_metal.sources.filesystem import MountFilter

    from otel_bare_metal.exposition.allowlist import DEFAULT_RULES, Allowlist
    from otel_bare_metal.hdhomerun import parse_address

    devices = args.hdhomerun_device if args.hdhomerun_device is not None else args.hdhomerun_device_env
    allow = args.hdhomerun_allow_target if args.hdhomerun_allow_target is not None else args.hdhomerun_allow_target_env
    if args.hdhomerun_devices_file:
        try:
            with open(args.hdhomerun_devices_file) as f:
                devices = devices + [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]
        except OSError as e:
            raise UsageError(f"--hdhomerun.devices-file {args.hdhomerun_devices_file!r}: {e.strerror or e}") from None
    try:
        for device in devices:
            parse_address(device)
        Allowlist(allow or DEFAULT_RULES, configured=devices)
        exporters = selected_exporters(environ, args.otlp_endpoint)
        if "otlp" in exporters:
            protocol(environ, args.otlp_protocol)
        parse_listen_address(args.web_listen_address)
        MountFilter(
            args.collector_filesystem_mount_points_exclude,
            args.collector_filesystem_fs_types_exclude,
            args.collector_filesystem_mount_points_include,
            args.collector_filesystem_fs_types_include,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not args.web_telemetry_path.startswith("/") or args.web_telemetry_path in ("/", "/healthz"):
        raise UsageError(f"--web.telemetry-path must start with / and not be / or /healthz: {args.web_telemetry_path!r}")
    for flag, path in (("--path.procfs", args.path_procfs), ("--path.rootfs", args.path_rootfs)):
        if not os.path.isdir(path):
            raise UsageError(f"{flag} {path!r}: not a directory")
    if args.collector_cpu and sys.platform.startswith("linux") and not os.path.isfile(os.path.join(args.path_procfs, "stat")):
        raise UsageError(f"--path.procfs {args.path_procfs!r}: no stat file there (is it a procfs?)")
    return Config(
        listen_address=args.web_listen_address,
        telemetry_path=args.web_telemetry_path,
        timeout_offset=args.timeout_offset,
        procfs=args.path_procfs,
        sysfs=args.path_sysfs,
        rootfs=args.path_rootfs,
        collectors={"cpu": args.collector_cpu, "filesystem": args.collector_filesystem},
        mount_points_exclude=args.collector_filesystem_mount_points_exclude,
        fs_types_exclude=args.collector_filesystem_fs_types_exclude,
        mount_points_include=args.collector_filesystem_mount_points_include,
        fs_types_include=args.collector_filesystem_fs_types_include,
        mount_timeout=args.collector_filesystem_mount_timeout,
        scope_labels=args.metrics_scope_labels,
        naming=args.metrics_naming,
        web_config_file=args.web_config_file,
        hdhomerun_devices=devices,
        hdhomerun_discover=args.hdhomerun_discover,
        hdhomerun_timeout=args.hdhomerun_timeout,
        hdhomerun_allow_targets=allow or list(DEFAULT_RULES),
        exporters=exporters,
        otlp_endpoint=args.otlp_endpoint,
        otlp_protocol=args.otlp_protocol,
    )


def serve(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    from otel_bare_metal.logutil import setup_logging

    args = serve_parser(environ).parse_args(argv)
    config = config_from_args(args, environ)
    setup_logging(args.log_level)

    from otel_bare_metal.app import Exporter

    from otel_bare_metal.exposition.webconfig import WebConfigError

    exporter = Exporter(config)
    try:
        exporter.start()
    except WebConfigError as e:
        exporter.close()
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        exporter.close()
        print(f"{PROG}: cannot listen on {config.listen_address}: {e.strerror or e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if exporter.web_config is not None and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: exporter.web_config.reload())
    while not stop.wait(3600):
        pass
    exporter.close()
    return 0


def cpustat(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    p = _Parser(prog=f"{PROG} cpustat", description="Print each CPU's user, system and idle seconds from /proc/stat.")
    p.add_argument("--path.procfs", dest="procfs", default=environ.get(env_name("--path.procfs"), "/proc"))
    args = p.parse_args(argv)
    from otel_bare_metal.sources import cpu_source

    try:
        stat = cpu_source(args.procfs).read()
    except OSError as e:
        print(f"{PROG} cpustat: cannot read {args.procfs}/stat: {e.strerror or e}", file=sys.stderr)
        return 1
    for c in stat.cpus:
        m = c.modes
        print(f"cpu{c.cpu}: user={m.get('user', 0):.2f}s system={m.get('system', 0):.2f}s idle={m.get('idle', 0):.2f}s")
    for error in stat.errors:
        print(f"{PROG} cpustat: {error}", file=sys.stderr)
    return 1 if stat.errors else 0


def statfs(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    p = _Parser(prog=f"{PROG} statfs", description="Print statfs(2) figures of the filesystem holding PATH.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--path.procfs", dest="procfs", default=environ.get(env_name("--path.procfs"), "/proc"))
    args = p.parse_args(argv)
    from otel_bare_metal.sources.filesystem import os_statfs
    from otel_bare_metal.sources.procfs import read_mountinfo

    try:
        result = os_statfs(args.path)
    except OSError as e:
        print(f"{PROG} statfs: {args.path}: {e.strerror or e}", file=sys.stderr)
        return 1
    fstype = "unknown"
    try:
        real = os.path.realpath(args.path)
        best = ""
        for mount in read_mountinfo(args.procfs).mounts:
            mp = mount.mountpoint
            if (real == mp or real.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, fstype = mp, mount.fstype
    except OSError:
        pass
    b = result.bsize
    print(
        f"{args.path} ({fstype}): {result.files} files, {result.ffree} free files; "
        f"size {result.blocks * b} bytes, free {result.bfree * b} bytes, available {result.bavail * b} bytes"
    )
    return 0


def hdhomerun(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    from otel_bare_metal.hdhomerun.cli import main as hdhomerun_main

    return hdhomerun_main(list(argv))


COMMANDS = {"cpustat": cpustat, "statfs": statfs, "hdhomerun": hdhomerun}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:], environ)
        if argv and argv[0] == "serve":
            argv = argv[1:]
        return serve(argv, environ)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
