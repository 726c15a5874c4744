"""The exporter's configuration: the ``Config`` value and the one ``load`` that builds it.

``load(argv, environ, registry)`` is the only place that reads the command line and the
environment, once each: ours (``OTEL_BARE_METAL_<FLAG>``) and the OpenTelemetry variables that
choose and place the exporters and describe the resource (``OTEL_METRICS_EXPORTER``,
``OTEL_SDK_DISABLED``, ``OTEL_EXPORTER_PROMETHEUS_*``, the OTLP protocol and endpoint,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``).  The SDK's own OTLP exporter and periodic
reader still read their other settings (headers, certificate, compression, interval) themselves,
as the specification has every SDK do.
Every flag is also read from the environment: ``--web.listen-address`` is
``OTEL_BARE_METAL_WEB_LISTEN_ADDRESS`` (upper case, ``.`` and ``-`` become ``_``); a flag on the
command line wins over the environment.  An environment value goes through exactly the
validation of its flag (``Flag.convert``: choices in any case, numbers, durations, booleans);
a bad one is a ``ConfigError`` naming the variable.

``load`` is pure apart from reading the files its checks need (``--path.procfs`` must be a
directory, ``--hdhomerun.devices-file`` is read): it logs nothing and returns what it would warn
about in ``Config.warnings``, so the command line logs them once logging is set up.

The exporter-wide flags are the rows of ``FLAGS``, one each; a collector's own flags are
declared with its options (``registry.option``).  Loading plugins is not this module's business:
the caller hands in the registry.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, NoReturn, Sequence

from opentelemetry.sdk.resources import Resource

from otel_bare_metal import __version__
from otel_bare_metal.address import ListenAddress, parse_listen_address
from otel_bare_metal.exposition import otelenv
from otel_bare_metal.exposition.otlp import PROTOCOLS, otlp_endpoint, protocol, protocol_warnings
from otel_bare_metal.registry import ENV_PREFIX, CollectorSpec, Flag, Paths, Registry
from otel_bare_metal.telemetry.collection import STUCK_AFTER
from otel_bare_metal.telemetry.resource import build_resource

PROG = "otel-bare-metal"
LISTEN_DEFAULT = ":9464"  # the OpenTelemetry specification's Prometheus port, on every interface


class ConfigError(ValueError):
    """A bad flag, environment variable or path: one line, exit code 2."""


def count(text: str) -> int:
    """A whole number >= 0 (``--web.max-requests``, ``--web.max-connections``)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative: {text!r}")
    return value


def telemetry_path(text: str) -> str:
    if not text.startswith("/") or text in ("/", "/healthz"):
        raise ValueError(f"must start with / and not be / or /healthz: {text!r}")
    return text


# The exporter-wide flags, one row each: the Config field, the environment variable and the
# validation follow from the row.  node_exporter's flags keep node_exporter's names and meaning.
FLAGS: list[Flag] = [
    Flag("--web.listen-address", [LISTEN_DEFAULT], "Address on which to expose metrics and web interface (repeatable; env: "
         "comma-separated; else OTEL_EXPORTER_PROMETHEUS_HOST/_PORT).", field="listen_address", parse=parse_listen_address,
         metavar="ADDRESS"),
    Flag("--web.systemd-socket", False, "Use systemd socket activation listeners instead of port listeners (Linux only).",
         field="systemd_socket"),
    Flag("--web.config.file", "", "Path to a web configuration file (exporter-toolkit format) for TLS and basic auth; "
         "SIGHUP reloads it.", field="web_config_file", metavar="PATH"),
    Flag("--web.telemetry-path", "/metrics", "Path under which to expose metrics.", field="telemetry_path",
         parse=telemetry_path, metavar="PATH"),
    Flag("--web.disable-exporter-metrics", False, "Exclude metrics about the exporter itself (process_*, "
         "otel_bare_metal_build_info); the per-collector scrape metrics stay, as node_exporter's do.",
         field="disable_exporter_metrics"),
    Flag("--web.max-requests", 40, "Maximum number of parallel scrape requests. Use 0 to disable.", field="max_requests",
         parse=count, metavar="N"),
    Flag("--web.max-connections", 2048, "Maximum number of simultaneous connections across all listeners; when all are "
         "taken the one idle longest is closed to make room, else the new one. 0: as many as the open files limit "
         "allows.", field="max_connections",
         parse=count, metavar="N"),
    Flag("--timeout-offset", 0.5, "Time to subtract from Prometheus's X-Prometheus-Scrape-Timeout-Seconds "
         "(blackbox_exporter's flag; without the header a scrape may take 10s less this).", field="timeout_offset"),
    Flag("--path.procfs", "/proc", "procfs mountpoint.", field="procfs", metavar="PATH"),
    Flag("--path.sysfs", "/sys", "sysfs mountpoint.", field="sysfs", metavar="PATH"),
    Flag("--path.rootfs", "/", "rootfs mountpoint (the host's / when running in a container).", field="rootfs",
         metavar="PATH"),
    Flag("--collector.disable-defaults", False, "Set all collectors to disabled by default.", field="disable_defaults"),
    Flag("--otlp.endpoint", "", "Where OTLP goes when OTEL_METRICS_EXPORTER includes otlp.", field="otlp_endpoint",
         metavar="URL", default_text="OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT, else "
         "http://localhost:4318/v1/metrics or, over grpc, http://localhost:4317"),
    Flag("--otlp.protocol", "", "OTLP protocol.", field="otlp_protocol", choices=PROTOCOLS,
         default_text="OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf"),
    Flag("--metrics.naming", "otel", "otel (semantic conventions) or classic (node_exporter and hdhomerun_exporter names).",
         field="naming", choices=("otel", "classic")),
    Flag("--metrics.scope-labels", False, "Add otel_scope_name/version labels to every sample (doubles the payload).",
         field="scope_labels"),
    Flag("--log.level", "info", "Only log messages with the given severity or above (any case).",
         field="log_level", choices=("debug", "info", "warn", "error")),
    Flag("--log.format", "logfmt", "Output format of log messages.", field="log_format", choices=("logfmt", "json")),
]


class Notice(NamedTuple):
    """Something ``load`` would warn about: a constant message and its fields."""

    msg: str
    fields: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Config:
    """Everything the exporter is built from.  Tests build one directly; ``load`` builds it from
    the command line and the environment."""

    listen_address: tuple[ListenAddress, ...] = (ListenAddress(LISTEN_DEFAULT),)
    systemd_socket: bool = False  # listen on the sockets systemd passes instead
    web_config_file: str = ""
    telemetry_path: str = "/metrics"
    disable_exporter_metrics: bool = False  # no process_* / build_info self-metrics
    max_requests: int = 40
    max_connections: int = 2048
    timeout_offset: float = 0.5
    procfs: str = "/proc"
    sysfs: str = "/sys"
    rootfs: str = "/"
    platform: str = sys.platform
    naming: str = "otel"
    scope_labels: bool = False
    log_level: str = "info"
    log_format: str = "logfmt"
    # Which exporters run (OTEL_METRICS_EXPORTER, OTEL_SDK_DISABLED: exposition/otelenv.py).
    exporters: frozenset[str] = frozenset({"prometheus"})
    sdk_disabled: bool = False
    # OTLP, resolved: --otlp.protocol / --otlp.endpoint, else the OTEL_EXPORTER_OTLP_* variables.
    otlp_protocol: str = "http/protobuf"
    otlp_endpoint: str = ""  # "" = the specification's default for the protocol
    resource: Resource | None = None  # who is reporting (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, K8S_*)
    # Collector name → on.  None: each collector's default.  Given: only the ones set true.
    collectors: Mapping[str, bool] | None = None
    # Collector name → its options object (CollectorSpec.options); a missing one has its defaults.
    options: Mapping[str, Any] = field(default_factory=dict)
    stuck_after: float = STUCK_AFTER  # /healthz answers 503 while a source read runs longer
    warnings: tuple[Notice, ...] = ()

    def __post_init__(self) -> None:
        addresses = (self.listen_address,) if isinstance(self.listen_address, str) else self.listen_address
        object.__setattr__(self, "listen_address", tuple(parse_listen_address(a) for a in addresses))

    def paths(self) -> Paths:
        return Paths(self.procfs, self.sysfs, self.rootfs, self.platform)

    def enabled(self, spec: CollectorSpec) -> bool:
        if self.collectors is None:
            return spec.default_enabled
        return bool(self.collectors.get(spec.name))

    def options_for(self, spec: CollectorSpec) -> Any:
        return self.options[spec.name] if spec.name in self.options else spec.default_options()


# ------------------------------------------------------------------ the command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, never the usage block or a traceback
        raise ConfigError(message)


class _HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=40, width=120)


def version_text() -> str:
    """``--version``: ours, then Python's and the platform's (as node_exporter prints Go's)."""
    return (f"{PROG}, version {__version__}\n"
            f"  python version: {platform.python_version()} ({platform.python_implementation()})\n"
            f"  platform: {sys.platform}/{platform.machine()} ({platform.platform()})")


class _Version(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version_text())
        parser.exit()


def _convert(row: Flag):
    def convert(text: str):
        try:
            return row.convert(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = row.shown_metavar().lower()
    return convert


def _add(p: argparse.ArgumentParser, row: Flag, default_text: str | None = None) -> None:
    """One flag: every default is None, so ``load`` can tell "given" from "not given" and apply
    the environment; ``--help`` shows the default and the variable."""
    shown = default_text if default_text is not None else row.shown_default()
    help_text = f"{row.help} (default: {shown}) [{row.env}]".replace("%", "%%")
    if row.is_bool:
        p.add_argument(row.flag, dest=row.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        return
    kw: dict[str, Any] = dict(dest=row.name, type=_convert(row), default=None, metavar=row.shown_metavar())
    if row.is_list:
        kw["action"] = "append"
    p.add_argument(row.flag, help=help_text, **kw)
    for alias in row.aliases:  # deprecated spellings: accepted, not advertised
        p.add_argument(alias, help=argparse.SUPPRESS, **kw)


def parser(registry: Registry, listen_default: str = LISTEN_DEFAULT) -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        formatter_class=_HelpFormatter,
        allow_abbrev=False,  # as node_exporter: a flag is spelled out
        description="Export CPU, filesystem and HDHomeRun metrics through OpenTelemetry. "
        f"Subcommands: cpustat, statfs PATH, hdhomerun. Every flag is also read from {ENV_PREFIX}<FLAG>; "
        "a flag on the command line wins.",
    )
    p.add_argument("--version", action=_Version, nargs=0, help="show the version, Python's and the platform, and exit")
    for row in FLAGS:
        _add(p, row, listen_default if row.name == "listen_address" else None)
    for spec in registry.specs:
        _add(p, spec.enable_flag)
        for row in spec.flags:
            _add(p, row)
    return p


def _unknown_disables(argv: list[str], p: argparse.ArgumentParser, notices: list[Notice]) -> list[str]:
    """``--no-collector.<name>`` (or ``--no-collector.<name>.<option>``) for something we do not
    collect turns off nothing: node_exporter units carry many (``--no-collector.wifi``,
    ``--no-collector.cpu.info``), so it is dropped with a warning, not refused."""
    known = set(p._option_string_actions)
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg.startswith("--no-collector.") and "=" not in arg and arg not in known:
            notices.append(Notice("ignoring a flag that turns off something this exporter does not collect",
                                  {"flag": arg}))
            continue
        out.append(arg)
    return out


def _from_environment(row: Flag, environ: Mapping[str, str], notices: list[Notice]) -> tuple[bool, Any]:
    """(found, value) of the row's variable (or of a deprecated spelling's), validated as the flag."""
    names = [row.env] + [Flag(alias, row.default, "").env for alias in row.aliases]
    for name in names:
        if name not in environ:
            continue
        text = environ[name]
        if name != row.env:
            notices.append(Notice("deprecated environment variable", {"variable": name, "use": row.env}))
        try:
            if row.is_list:
                return True, [row.convert(item.strip()) for item in text.split(",") if item.strip()]
            return True, row.convert(text)
        except ValueError as e:
            raise ConfigError(f"environment variable {name}={text!r}: {e}") from None
    return False, None


def _deprecated_flags(argv: Sequence[str], rows: Sequence[Flag], notices: list[Notice]) -> None:
    """A deprecated spelling is a warning; given together with the current one, an error (as
    node_exporter's filesystem collector has it)."""

    def given(flag: str) -> bool:
        return any(arg == flag or arg.startswith(flag + "=") for arg in argv)

    for row in rows:
        for alias in row.aliases:
            if given(alias):
                if given(row.flag):
                    raise ConfigError(f"{alias} and {row.flag} are mutually exclusive ({alias} is deprecated)")
                notices.append(Notice("deprecated flag", {"flag": alias, "use": row.flag}))


def flag_values(argv: Sequence[str], environ: Mapping[str, str], registry: Registry,
                notices: list[Notice] | None = None) -> dict[str, Any]:
    """Every flag's value by ``Flag.name``, from the command line, else the environment, else the
    default; validated as values, not yet against the machine (paths) or each other."""
    notices = [] if notices is None else notices
    listen_default, listen_warnings = otelenv.prometheus_listen_address(environ, LISTEN_DEFAULT)
    notices.extend(Notice(w) for w in listen_warnings)
    p = parser(registry, listen_default)
    argv = _unknown_disables(list(argv), p, notices)
    args = p.parse_args(argv)
    rows = [*FLAGS, *(row for spec in registry.specs for row in (spec.enable_flag, *spec.flags))]
    _deprecated_flags(argv, rows, notices)
    values: dict[str, Any] = {}
    for row in rows:
        value = getattr(args, row.name)
        if value is None:
            found, value = _from_environment(row, environ, notices)
            if not found:
                value = _default(row, listen_default)
        values[row.name] = value
    collectors = {}
    for spec in registry.specs:
        asked = values[spec.enable_flag.name]
        collectors[spec.name] = asked if asked is not None else spec.default_enabled and not values["disable_defaults"]
    values["collectors"] = collectors
    return values


def load(argv: Sequence[str], environ: Mapping[str, str], registry: Registry) -> Config:
    """The Config the command line and the environment describe.  Raises ``ConfigError`` (exit 2)
    for anything wrong with them; ``--help`` and ``--version`` print and raise SystemExit(0)."""
    notices: list[Notice] = []
    values = flag_values(argv, environ, registry, notices)
    for flag, path in (("--path.procfs", values["procfs"]), ("--path.rootfs", values["rootfs"])):
        if not os.path.isdir(path):  # a NUL byte in it is simply not a directory
            raise ConfigError(f"{flag} {path!r}: not a directory")
    collectors = values["collectors"]
    paths = Paths(values["procfs"], values["sysfs"], values["rootfs"])
    options = {}
    try:
        for spec in registry.specs:
            options[spec.name] = _collector_options(spec, values, paths, collectors[spec.name])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    exporters, disabled = _exporters(values, environ, notices)
    proto = protocol(environ, values["otlp_protocol"])
    return Config(
        listen_address=tuple(values["listen_address"]),
        systemd_socket=values["systemd_socket"],
        web_config_file=values["web_config_file"],
        telemetry_path=values["telemetry_path"],
        disable_exporter_metrics=values["disable_exporter_metrics"],
        max_requests=values["max_requests"],
        max_connections=values["max_connections"],
        timeout_offset=values["timeout_offset"],
        procfs=paths.procfs,
        sysfs=paths.sysfs,
        rootfs=paths.rootfs,
        naming=values["naming"],
        scope_labels=values["scope_labels"],
        log_level=values["log_level"],
        log_format=values["log_format"],
        exporters=exporters,
        sdk_disabled=disabled,
        otlp_protocol=proto,
        otlp_endpoint=otlp_endpoint(environ, proto, values["otlp_endpoint"]),
        resource=build_resource(environ),
        collectors=MappingProxyType(collectors),
        options=MappingProxyType(options),
        warnings=tuple(notices),
    )


def _default(row: Flag, listen_default: str) -> Any:
    if row.name == "listen_address":  # OTEL_EXPORTER_PROMETHEUS_HOST/_PORT may have replaced it
        return [ListenAddress(listen_default)]
    if row.field.startswith("collector:"):  # not asked for: --collector.disable-defaults decides
        return None
    return list(row.default) if row.is_list else row.default


def _collector_options(spec: CollectorSpec, values: Mapping[str, Any], paths: Paths, enabled: bool) -> Any:
    options = spec.make_options(values)
    if spec.check is None:
        return options
    mutable = dict(options) if spec.options is None else options  # a plugin's check may edit its mapping
    checked = spec.check(paths, mutable, enabled)
    result = mutable if checked is None else checked
    return MappingProxyType(result) if isinstance(result, dict) else result


def _exporters(values: Mapping[str, Any], environ: Mapping[str, str], notices: list[Notice]) -> tuple[frozenset[str], bool]:
    """OTEL_METRICS_EXPORTER and OTEL_SDK_DISABLED (exposition/otelenv.py), with their warnings."""
    exporters, warnings = otelenv.metrics_exporters(environ)
    disabled, more = otelenv.sdk_disabled(environ)
    notices.extend(Notice(w) for w in warnings + more)
    if "otlp" in exporters and not disabled:
        notices.extend(Notice(w) for w in protocol_warnings(environ))
    if values["otlp_endpoint"] and "otlp" not in exporters and not disabled:
        notices.append(Notice("--otlp.endpoint is set but OTEL_METRICS_EXPORTER does not include otlp: not pushing OTLP"))
    return (frozenset() if disabled else exporters), disabled
