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
import gc
import logging
import os
import signal
import sys
import threading
from typing import Mapping, Sequence

from otel_bare_metal import __version__
from otel_bare_metal.registry import ENV_PREFIX, Flag, Paths, Registry, env_name, positive_seconds, registry

PROG = "otel-bare-metal"
SHUTDOWN_GRACE = 5.0  # seconds a scrape in flight may take to finish after SIGTERM
log = logging.getLogger(__name__)


class UsageError(Exception):
    """A bad flag or value: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, never the usage block or a traceback
        raise UsageError(message)


def count(text: str) -> int:
    """A whole number >= 0 (``--web.max-requests``, ``--web.max-connections``)."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative: {text!r}")
    return value


def _bool(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"environment variable {name}={text!r}: want true or false")


# The exporter-wide flags, one row each: the environment variable, the Config field
# (``app.Config``) and the parsing follow from the row (``registry.Flag``).  A collector's own
# flags are declared beside it (``otel_bare_metal/collectors/``), not here.
SERVE_FLAGS: list[Flag] = [
    Flag("--web.listen-address", [":9464"], "Address on which to expose metrics and web interface (repeatable; "
         "env: comma-separated).", field="listen_address"),
    Flag("--web.max-requests", 40, "Maximum number of parallel scrape requests. Use 0 to disable.", field="max_requests",
         parse=count),
    Flag("--web.max-connections", 2048, "Maximum number of simultaneous connections across all listeners; past it new "
         "connections are closed at once. 0: as many as the open files limit allows.", field="max_connections", parse=count),
    Flag("--web.telemetry-path", "/metrics", "Path under which to expose metrics.", field="telemetry_path"),
    Flag("--timeout-offset", 0.5, "Seconds to subtract from Prometheus's X-Prometheus-Scrape-Timeout-Seconds "
         "(blackbox_exporter's flag; without the header a scrape may take 10 s less this).", field="timeout_offset"),
    Flag("--web.config.file", "", "Path to a web configuration file (exporter-toolkit format) for TLS and basic auth.",
         field="web_config_file"),
    Flag("--path.procfs", "/proc", "procfs mountpoint.", field="procfs"),
    Flag("--path.sysfs", "/sys", "sysfs mountpoint.", field="sysfs"),
    Flag("--path.rootfs", "/", "rootfs mountpoint (the host's / when running in a container).", field="rootfs"),
    Flag("--collector.disable-defaults", False, "Set all collectors to disabled by default.", field="disable_defaults"),
    Flag("--otlp.endpoint", "", "Where OTLP goes when OTEL_METRICS_EXPORTER includes otlp (else OTEL_EXPORTER_OTLP_ENDPOINT / "
         "_METRICS_ENDPOINT).",
         field="otlp_endpoint"),
    Flag("--otlp.protocol", "", "grpc or http/protobuf (else OTEL_EXPORTER_OTLP_PROTOCOL; default http/protobuf).",
         field="otlp_protocol"),
    Flag("--metrics.naming", "otel", "otel (semantic conventions) or classic (node_exporter and hdhomerun_exporter names).",
         field="naming", choices=("otel", "classic")),
    Flag("--metrics.scope-labels", False, "Add otel_scope_name/version labels to every sample (doubles the payload).",
         field="scope_labels"),
    Flag("--log.level", "info", "Only log messages with the given severity or above: debug, info, warn, error.",
         field="log_level", choices=("debug", "info", "warn", "error")),
    Flag("--log.format", "logfmt", "Output format of log messages: logfmt or json.", field="log_format",
         choices=("logfmt", "json")),
]


def all_flags(reg: Registry | None = None) -> list[Flag]:
    """The exporter-wide flags, then each collector's ``--[no-]collector.<name>`` and own flags."""
    reg = reg or registry()
    out = list(SERVE_FLAGS)
    for spec in reg.specs:
        out.append(spec.enable_flag)
        out.extend(spec.flags)
    return out


def _add(p: argparse.ArgumentParser, row: Flag, environ: Mapping[str, str], toggle: bool = False) -> None:
    var = row.env
    help_text = f"{row.help} [{var}]"
    if isinstance(row.default, list):
        value = [v.strip() for v in environ.get(var, "").split(",") if v.strip()] or list(row.default)
        p.add_argument(row.flag, dest=row.name, action="append", default=None, metavar="VALUE", help=help_text)
        p.set_defaults(**{row.name + ":env": value})
    elif isinstance(row.default, bool):
        # A collector's toggle stays None unless set (flag or environment): --collector.disable-defaults
        # turns off only the collectors nobody asked for, as node_exporter does.
        value = _bool(environ[var], var) if var in environ else (None if toggle else row.default)
        p.add_argument(row.flag, dest=row.name, action=argparse.BooleanOptionalAction, default=value, help=help_text)
    else:
        parse = row.parse or (positive_seconds if isinstance(row.default, float) else str)
        value = row.default
        if var in environ:
            try:
                value = parse(environ[var])
            except ValueError as e:
                raise UsageError(f"environment variable {var}: {e}") from None
        p.add_argument(row.flag, dest=row.name, type=_argtype(parse), default=value, choices=row.choices,
                       metavar=row.flag.split(".")[-1].upper().replace("-", "_"), help=help_text)


def _argtype(parse):
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def serve_parser(environ: Mapping[str, str], reg: Registry | None = None) -> argparse.ArgumentParser:
    reg = reg or registry()
    p = _Parser(
        prog=PROG,
        description="Export CPU, filesystem and HDHomeRun metrics through OpenTelemetry. "
        f"Subcommands: cpustat, statfs PATH, hdhomerun. Every flag is also read from {ENV_PREFIX}<FLAG>.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    for row in SERVE_FLAGS:
        if row.flag == "--web.listen-address":  # OTEL_EXPORTER_PROMETHEUS_HOST/_PORT replace the default
            from dataclasses import replace

            from otel_bare_metal.exposition.otelenv import prometheus_listen_address

            row = replace(row, default=[prometheus_listen_address(environ, row.default[0])[0]])
        _add(p, row, environ)
    for spec in reg.specs:
        _add(p, spec.enable_flag, environ, toggle=True)
        for row in spec.flags:
            _add(p, row, environ)
    return p


def enabled_collectors(args: argparse.Namespace, reg: Registry | None = None) -> dict[str, bool]:
    """Collector name → on: as asked (flag or environment), else its default, which
    ``--collector.disable-defaults`` turns off (node_exporter's semantics)."""
    reg = reg or registry()
    out = {}
    for spec in reg.specs:
        asked = getattr(args, spec.enable_flag.name)
        out[spec.name] = asked if asked is not None else spec.default_enabled and not args.disable_defaults
    return out


def _otel_environment(otlp_endpoint: str, environ: Mapping[str, str]) -> tuple[frozenset[str], bool]:
    """OTEL_METRICS_EXPORTER and OTEL_SDK_DISABLED (exposition/otelenv.py); warnings are logged."""
    import logging

    from otel_bare_metal.exposition import otelenv

    log = logging.getLogger("otel_bare_metal.cli")
    exporters, warnings = otelenv.metrics_exporters(environ)
    disabled, more = otelenv.sdk_disabled(environ)
    _, listen_warnings = otelenv.prometheus_listen_address(environ)
    if "otlp" in exporters and not disabled:
        from otel_bare_metal.exposition.otlp import protocol_warnings

        listen_warnings = listen_warnings + protocol_warnings(environ)
    for warning in warnings + more + listen_warnings:
        log.warning(warning)
    if otlp_endpoint and "otlp" not in exporters and not disabled:
        log.warning("--otlp.endpoint is set but OTEL_METRICS_EXPORTER does not include otlp: not pushing OTLP")
    return (frozenset() if disabled else exporters), disabled


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str], reg: Registry | None = None):
    from otel_bare_metal.app import Config
    from otel_bare_metal.exposition.http import parse_listen_address
    from otel_bare_metal.exposition.otlp import protocol

    reg = reg or registry()
    values = {}
    for row in SERVE_FLAGS + reg.flags():
        value = getattr(args, row.name)
        if isinstance(row.default, list):
            value = value if value is not None else getattr(args, row.name + ":env")
        values[row.name] = value
    collectors = enabled_collectors(args, reg)
    for flag, path in (("--path.procfs", values["procfs"]), ("--path.rootfs", values["rootfs"])):
        if not os.path.isdir(path):
            raise UsageError(f"{flag} {path!r}: not a directory")
    telemetry_path = values["telemetry_path"]
    if not telemetry_path.startswith("/") or telemetry_path in ("/", "/healthz"):
        raise UsageError(f"--web.telemetry-path must start with / and not be / or /healthz: {telemetry_path!r}")
    paths = Paths(values["procfs"], values["sysfs"], values["rootfs"])
    try:
        for spec in reg.specs:
            if spec.check is not None:
                options = spec.options(values)
                spec.check(paths, options, collectors[spec.name])
                values.update(options)
        exporters, disabled = _otel_environment(values["otlp_endpoint"], environ)
        if "otlp" in exporters:
            protocol(environ, values["otlp_protocol"])
        for address in values["listen_address"]:
            parse_listen_address(address)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return Config(**values, collectors=collectors, exporters=set(exporters), sdk_disabled=disabled)


def serve(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    from otel_bare_metal.logutil import setup_logging

    args = serve_parser(environ).parse_args(argv)
    setup_logging(args.log_level, args.log_format)  # first: reading the configuration may warn
    config = config_from_args(args, environ)
    from otel_bare_metal.exposition.http import raise_open_files_limit

    limits = raise_open_files_limit()  # as the Go runtime does: 1 024 descriptors go fast under a flood
    if limits is not None and limits[0] != limits[1]:
        log.debug("raised the open files limit", extra={"from": limits[0], "to": limits[1]})
    registry().log_problems()

    from otel_bare_metal.app import App

    from otel_bare_metal.exposition.webconfig import WebConfigError

    exporter = App(config)
    try:
        exporter.start()
    except WebConfigError as e:  # logging is set up: one error line in the chosen log format
        exporter.close()
        log.error(f"{e}")
        return 1
    except OSError as e:
        exporter.close()
        log.error(f"cannot listen on {e.strerror or e}")
        return 1
    # Everything built so far (modules, the SDK, instruments, caches) lives as long as the process:
    # keep the cyclic garbage collector from walking it in every full collection, which cost a
    # 256-CPU collection up to half again its time (bench/floor.py measures with the same freeze).
    gc.freeze()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if exporter.web_config is not None and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: exporter.web_config.reload())
    while not stop.wait(3600):
        pass
    # Stop accepting, let scrapes in flight finish (at most SHUTDOWN_GRACE seconds), then exit 0.
    # A second signal meanwhile ends the process at once.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    log.info("shutting down", extra={"grace_seconds": SHUTDOWN_GRACE})
    exporter.close(grace=SHUTDOWN_GRACE)
    return 0


def cpustat(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    p = _Parser(prog=f"{PROG} cpustat", description="Print each CPU's user, system and idle seconds from /proc/stat.")
    p.add_argument("--path.procfs", dest="procfs", default=environ.get(env_name("--path.procfs"), "/proc"))
    args = p.parse_args(argv)
    from otel_bare_metal.collectors.cpu import cpu_source

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
    from otel_bare_metal.collectors.filesystem.source import os_statfs
    from otel_bare_metal.procfs import read_mountinfo

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
    from otel_bare_metal.hdhr.cli import main as hdhomerun_main

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
