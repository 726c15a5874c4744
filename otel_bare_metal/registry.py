"""The collector registry: every collector declared once, everything else generated from it.

A collector is a ``CollectorSpec``: its name, whether it is on by default, a factory for its
source, the class that maps the source's records to observations, its rows of the definitions
table, its own flags and the prose of its ``docs/metrics.md`` section.  From the specs come:

* the command line: ``--[no-]collector.<name>`` for each, ``--collector.disable-defaults``, and
  each spec's own flags, every one also read from ``OTEL_BARE_METAL_<FLAG>`` (``config.load``);
* in ``config.Config``: ``collectors`` (name → enabled) and ``options`` (name → the collector's
  options object, built from its flags);
* the collectors an ``App`` runs and the observers it registers (``app.build_collectors``,
  ``telemetry.instrument``);
* the sections of ``docs/metrics.md`` (``docgen.py``).

Built-in collectors are the modules of ``otel_bare_metal/collectors/`` (each has a
``COLLECTOR``); other packages add theirs through the entry-point group
``otel_bare_metal.collectors`` (``docs/plugins.md``).  A plugin that fails to import or does
not declare a valid spec is skipped and its problem logged; the exporter still starts.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import pkgutil
import re
import sys
from dataclasses import dataclass, field, replace
from importlib import metadata
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from otel_bare_metal.logutil import Message

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "otel_bare_metal.collectors"
ENV_PREFIX = "OTEL_BARE_METAL_"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def env_name(flag: str) -> str:
    """``--web.listen-address`` → ``OTEL_BARE_METAL_WEB_LISTEN_ADDRESS``."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace(".", "_").replace("-", "_")


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def positive_seconds(text: str) -> float:
    """A duration > 0 in seconds: a number of seconds (``2.5``) or a Go duration as node_exporter's
    flags take it (``2.5s``, ``500ms``, ``1m30s``)."""
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        value = _go_duration(raw)
    if not 0 < value < float("inf"):
        raise ValueError(f"must be a positive duration: {text!r}")
    return value


def _go_duration(text: str) -> float:
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {text!r} (want seconds: 2.5, 2.5s, 500ms, 1m)")
    return total


def boolean(text: str) -> bool:
    """A boolean from the environment: true/false, 1/0, yes/no, on/off (any case)."""
    value = text.strip().lower()
    if value in ("1", "t", "true", "yes", "on"):
        return True
    if value in ("0", "f", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r} (want true or false)")


@dataclass(frozen=True)
class Flag:
    """One command-line flag, also read from the environment (``env``), stored in ``Config.<field>``
    (an exporter-wide flag) or in its collector's options (a collector's flag).

    The default's type picks the flag's shape: ``bool`` → ``--[no-]flag``; ``list`` or ``tuple`` →
    repeatable (the environment gives a comma-separated list); ``float`` → a positive duration in
    seconds; anything else → a string.  ``parse`` converts and validates one value (raising
    ValueError); ``choices`` are matched in any case.  The environment's value goes through exactly
    the same ``convert`` as the command line's.  ``aliases`` are deprecated spellings: still
    accepted, with a warning naming the current one.
    """

    flag: str
    default: Any
    help: str
    field: str = ""  # Config attribute; default: the flag without dashes, ``.`` and ``-`` → ``_``
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str = ""
    aliases: tuple[str, ...] = ()
    default_text: str = ""  # how --help and the README show the default, when not the value itself

    @property
    def name(self) -> str:
        return self.field or self.flag.lstrip("-").replace(".", "_").replace("-", "_")

    @property
    def env(self) -> str:
        return env_name(self.flag)

    @property
    def is_bool(self) -> bool:
        return isinstance(self.default, bool)

    @property
    def is_list(self) -> bool:
        return isinstance(self.default, (list, tuple))

    def convert(self, text: str) -> Any:
        """One value as given on the command line or in the environment, validated; raises ValueError."""
        if self.is_bool:
            return boolean(text)
        if self.choices is not None:
            for choice in self.choices:
                if text.strip().lower() == choice.lower():
                    return choice
            raise ValueError(f"invalid choice: {text!r} (choose from {', '.join(self.choices)})")
        if self.parse is not None:
            return self.parse(text)
        if isinstance(self.default, float):
            return positive_seconds(text)
        return text

    def shown_metavar(self) -> str:
        if self.metavar:
            return self.metavar
        if self.choices:
            return "{" + ",".join(self.choices) + "}"
        if isinstance(self.default, float) or self.parse is positive_seconds:
            return "DURATION"
        return self.flag.rsplit(".", 1)[-1].lstrip("-").upper().replace("-", "_")

    def shown_default(self) -> str:
        """The default as ``--help`` and the README show it."""
        if self.default_text:
            return self.default_text
        value = self.default
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, (list, tuple)):
            return ",".join(map(str, value)) or "none"
        if isinstance(value, float):
            return f"{value:g}s"
        return str(value) if value != "" else "none"


OPTION_FLAG = "otel_bare_metal.flag"  # the dataclasses.field metadata key ``option`` sets


def option(flag: str, default: Any, help: str, **kw: Any) -> Any:
    """A field of a collector's options dataclass that is also its flag::

        @dataclass(frozen=True)
        class Options:
            timeout: float = option("--collector.x.timeout", 2.5, "Seconds per read.")

    The field's name becomes ``Flag.field``; a list default is stored as a tuple."""
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata={OPTION_FLAG: Flag(flag, default, help, **kw)})


def option_flags(options: type) -> tuple[Flag, ...]:
    """The flags an options dataclass declares with ``option``, in field order."""
    return tuple(replace(f.metadata[OPTION_FLAG], field=f.name) for f in dataclasses.fields(options)
                 if OPTION_FLAG in f.metadata)


@dataclass(frozen=True)
class Paths:
    """Where the host's filesystems are (``--path.procfs``, ``--path.sysfs``, ``--path.rootfs``),
    and the platform (``sys.platform``) a source factory picks its implementation by."""

    procfs: str = "/proc"
    sysfs: str = "/sys"
    rootfs: str = "/"
    platform: str = sys.platform


Options = Mapping[str, Any]  # a plugin's own flag values by Flag.name, when it declares no options type

#: ``handler(query, accept, deadline) -> (status, body, content_type)``: the query parameters,
#: the client's Accept header and the scrape's deadline (a ``time.monotonic()`` value, see
#: ``otel_bare_metal.deadline``).
RouteHandler = Callable[[Mapping[str, list], "str | None", float], "tuple[int, bytes, str]"]


@dataclass(frozen=True)
class Route:
    """An HTTP route a collector serves beside ``/metrics`` (the hdhomerun collector's ``/probe``).

    The app mounts it and links it from ``/``, but does not count it against ``--web.max-requests``
    (those slots are ``/metrics``'s): a route declares its own budget, ``limit`` requests at once
    (``/probe``: ``--hdhomerun.max-probes``), which the HTTP server enforces; past it a request
    gets 503 at once, "Limit of concurrent ``limit_name`` reached".  The handler never sees the
    HTTP layer.  ``metrics_param``: a ``/metrics`` request carrying this query parameter is
    answered by this route instead (hdhomerun_exporter's ``/metrics?target=``), and counts against
    its budget.  ``close`` is called when the app stops.
    """

    path: str
    handler: RouteHandler
    title: str = ""  # the link text on the landing page
    example: str = ""  # the link's target (default: the path)
    metrics_param: str = ""
    close: Callable[[], None] | None = None
    limit: int | None = None  # requests served at once (0: no limit; None: no budget of its own, no limit)
    limit_name: str = "requests"  # what the 503 past the limit calls them


@dataclass(frozen=True)
class RouteContext:
    """What the app hands a collector's ``routes`` factory: its own flag values, the process's
    OpenTelemetry resource, the naming mode, and ``page(target_info=..., metrics=...)``, which
    makes a Prometheus page (a reader and its ``render(accept, budget)``) without the collector
    importing the exposition layer."""

    options: Any  # the collector's options object (CollectorSpec.options)
    resource: Any
    naming: str
    page: Callable[..., Any]


@dataclass(frozen=True)
class CollectorSpec:
    """Everything the exporter knows about one collector.

    ``source(paths, options)`` returns an object with ``read()`` (and optionally ``close()``),
    or None when there is nothing to collect (no HDHomeRun device configured).  ``observers``
    is called with the ``telemetry.SourceWorker`` and returns an object whose ``observers()`` maps
    each row of ``metrics`` (the ``Metric`` object itself, not its name) to a function returning
    that instrument's observations from ``worker.result``; ``register`` refuses a row without
    an observer and an observer without a row.

    A collector's flags, and the type of the ``options`` its ``source``, ``check`` and ``routes``
    receive:

    * ``options``: a frozen dataclass whose fields are declared with ``registry.option`` (each
      field is one flag); ``source`` gets an instance of it.  Its flags are put in ``flags``.
    * without ``options``, ``flags`` lists ``Flag`` rows and ``source`` gets a read-only mapping
      of their values by ``Flag.name`` (how plugins declare flags; still supported).

    ``check(paths, options, enabled)`` validates the values at start-up (raise ValueError with a
    message naming the flag) and may return replacement options (normalised values); returning
    None keeps them.
    """

    name: str
    source: Callable[[Paths, Any], Any]
    observers: Callable[[Any], Any]
    metrics: tuple = ()  # telemetry.definitions.Metric rows, each with collector=name
    default_enabled: bool = True
    flags: tuple[Flag, ...] = ()
    title: str = ""  # the docs/metrics.md section heading; default: the name
    docs: str = ""  # Markdown under the section's table
    check: Callable[[Paths, Any, bool], Any] | None = None
    routes: Callable[[RouteContext], list[Route]] | None = None  # HTTP routes it serves, enabled or not
    describe: Callable[[Any], Mapping[str, str]] | None = None  # its fields on the start-up log line, from its options
    plugin: str = ""  # the distribution a plugin came from ("" for built-ins)
    options: type | None = None  # a dataclass of ``option`` fields; see above

    def __post_init__(self) -> None:
        if self.options is not None:
            declared = option_flags(self.options)
            extra = tuple(f for f in self.flags if f.flag not in {d.flag for d in declared})
            object.__setattr__(self, "flags", declared + extra)

    @property
    def enable_flag(self) -> Flag:
        return Flag(f"--collector.{self.name}", self.default_enabled, f"Enable the {self.name} collector.",
                    field=f"collector:{self.name}")

    def make_options(self, values: Mapping[str, Any]) -> Any:
        """This collector's options from its flags' values by ``Flag.name`` (missing ones: defaults)."""
        given = {f.name: values[f.name] for f in self.flags if f.name in values}
        if self.options is not None:
            return self.options(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})
        return MappingProxyType({f.name: given.get(f.name, f.default) for f in self.flags})

    def default_options(self) -> Any:
        return self.make_options({})


def builtin_specs() -> list[CollectorSpec]:
    """The ``COLLECTOR`` of every module in ``otel_bare_metal/collectors/``, by module name."""
    import otel_bare_metal.collectors as package

    specs = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        spec = getattr(module, "COLLECTOR", None)
        if spec is not None:
            specs.append(spec)
    return specs


def load_plugins(known: Iterable[CollectorSpec], entry_points: Iterable[Any] | None = None) -> tuple[list[CollectorSpec], list[Message]]:
    """The valid plugin specs of the entry-point group, and one problem (a log Message) per plugin skipped."""
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    taken = {s.name for s in known}
    metric_names = {m.name for s in known for m in s.metrics}
    flag_names = {flag for s in known for f in s.flags for flag in (f.flag, *f.aliases)}
    specs, problems = [], []
    for ep in sorted(entry_points, key=lambda e: e.name):
        dist = getattr(getattr(ep, "dist", None), "name", None) or ep.value
        try:
            spec = ep.load()
            if callable(spec) and not isinstance(spec, CollectorSpec):
                spec = spec()
            problem = _plugin_problem(ep.name, spec, taken, metric_names, flag_names)
        except Exception as e:  # a broken plugin must never stop the exporter
            problem = f"{type(e).__name__}: {e}"
        if problem:
            problems.append(Message("collector plugin skipped", plugin=ep.name, distribution=dist, reason=problem))
            continue
        spec = replace(spec, plugin=dist)
        specs.append(spec)
        taken.add(spec.name)
        metric_names.update(m.name for m in spec.metrics)
        flag_names.update(flag for f in spec.flags for flag in (f.flag, *f.aliases))
    return specs, problems


def _plugin_problem(ep_name: str, spec: Any, taken: set[str], metric_names: set[str], flag_names: set[str]) -> str:
    if not isinstance(spec, CollectorSpec):
        return f"the entry point gives {type(spec).__name__}, not an otel_bare_metal.registry.CollectorSpec"
    if not NAME.match(spec.name):
        return f"name {spec.name!r}: want lower-case letters, digits and _"
    if spec.name != ep_name:
        return f"the entry point is named {ep_name!r} but the collector {spec.name!r}"
    if spec.name in taken or spec.name in ("self", "disable_defaults"):
        return f"a collector named {spec.name!r} exists already"
    if not spec.metrics:
        return "it declares no metrics"
    for m in spec.metrics:
        if m.collector != spec.name:
            return f"metric {m.name!r} says collector {m.collector!r}, not {spec.name!r}"
        if m.name in metric_names:
            return f"metric {m.name!r} is exported already"
    for f in spec.flags:
        for flag in (f.flag, *f.aliases):
            if not flag.startswith(f"--collector.{spec.name}."):
                return f"flag {flag!r} must start with --collector.{spec.name}."
            if flag in flag_names:
                return f"flag {flag!r} exists already"
    return ""


@dataclass
class Registry:
    specs: list[CollectorSpec]
    problems: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_name = {s.name: s for s in self.specs}

    def get(self, name: str) -> CollectorSpec:
        return self.by_name[name]

    def flags(self) -> list[Flag]:
        return [f for s in self.specs for f in s.flags]

    def metrics(self) -> list[Any]:
        """Every collector's metric rows (``telemetry.definitions.Metric``), in registry order."""
        return [m for s in self.specs for m in s.metrics]

    def log_problems(self) -> None:
        for problem in self.problems:
            log.error(problem)  # a Message: constant text, the plugin and the reason as fields


@functools.lru_cache(maxsize=1)
def registry() -> Registry:
    """Built-in collectors, then the installed plugins (loaded once per process)."""
    builtins = builtin_specs()
    plugins, problems = load_plugins(builtins)
    return Registry(builtins + plugins, problems)
