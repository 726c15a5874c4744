"""config.load: every value from the environment is validated exactly as its flag; --help and
--version say what a user needs; node_exporter's flags are accepted."""

from __future__ import annotations

import platform

import pytest

from helpers import FIXTURES
from otel_bare_metal import __version__
from otel_bare_metal.cli import main
from otel_bare_metal.config import FLAGS, Config, ConfigError, load, parser
from otel_bare_metal.registry import env_name, registry

PROC = str(FIXTURES / "proc")
BASE = [f"--path.procfs={PROC}", "--web.listen-address=127.0.0.1:0"]


@pytest.fixture(autouse=True)
def never_serve(monkeypatch):
    """These tests stop at the configuration: reaching the server start is a failure, not a hang."""
    def start(*args, **kwargs):
        raise AssertionError("the exporter would have started")

    monkeypatch.setattr("otel_bare_metal.cli.start", start)


def run(argv, environ, capsys) -> tuple[int, str]:
    code = main(list(argv), environ)
    return code, capsys.readouterr().err


# ------------------------------------------------------------------ environment = flag validation

# (flag, a bad value): one of each kind of flag — choices, whole numbers, durations, booleans,
# lists, collector flags.
BAD = [
    ("--log.level", "verbose"),
    ("--log.format", "text"),
    ("--metrics.naming", "prom"),
    ("--otlp.protocol", "http"),
    ("--web.max-requests", "many"),
    ("--web.max-connections", "-1"),
    ("--timeout-offset", "soon"),
    ("--hdhomerun.timeout", "0"),
    ("--collector.filesystem.mount-timeout", "5x"),
    ("--web.listen-address", "9464"),
    ("--hdhomerun.device", "[::1"),
    ("--web.telemetry-path", "metrics"),
]
BOOLS = ["--collector.cpu", "--metrics.scope-labels", "--collector.disable-defaults", "--web.disable-exporter-metrics",
         "--collector.cpu.guest", "--web.systemd-socket"]


@pytest.mark.parametrize("flag,value", BAD)
def test_a_bad_environment_value_is_one_line_naming_the_variable_and_exit_2(flag, value, capsys):
    code, flag_err = run([*BASE, f"{flag}={value}"], {}, capsys)
    assert code == 2 and len(flag_err.strip().splitlines()) == 1
    var = env_name(flag)
    code, env_err = run(BASE[:1], {var: value}, capsys)
    assert code == 2, env_err
    (line,) = env_err.strip().splitlines()
    assert var in line and "Traceback" not in line
    # The same reason as the flag's: the value went through the same validation.
    assert line.split(": ", 3)[-1] == flag_err.strip().split(": ", 3)[-1], (line, flag_err)


@pytest.mark.parametrize("flag", BOOLS)
def test_a_bad_boolean_in_the_environment_is_exit_2(flag, capsys):
    code, err = run(BASE, {env_name(flag): "maybe"}, capsys)
    assert code == 2 and env_name(flag) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("var,value,field,expected", [
    ("OTEL_BARE_METAL_LOG_LEVEL", "DEBUG", "log_level", "debug"),
    ("OTEL_BARE_METAL_LOG_LEVEL", "Warn", "log_level", "warn"),
    ("OTEL_BARE_METAL_LOG_FORMAT", "JSON", "log_format", "json"),
    ("OTEL_BARE_METAL_METRICS_NAMING", "Classic", "naming", "classic"),
    ("OTEL_BARE_METAL_TIMEOUT_OFFSET", "250ms", "timeout_offset", 0.25),
    ("OTEL_BARE_METAL_WEB_MAX_REQUESTS", " 7 ", "max_requests", 7),
    ("OTEL_BARE_METAL_WEB_DISABLE_EXPORTER_METRICS", "true", "disable_exporter_metrics", True),
    ("OTEL_BARE_METAL_WEB_SYSTEMD_SOCKET", "1", "systemd_socket", True),
    ("OTEL_BARE_METAL_WEB_LISTEN_ADDRESS", "127.0.0.1:1,[::1]:2", "listen_address", ("127.0.0.1:1", "[::1]:2")),
])
def test_good_environment_values_land_in_the_config(var, value, field, expected):
    config = load([f"--path.procfs={PROC}"], {var: value}, registry())
    assert getattr(config, field) == expected


def test_the_command_line_wins_and_a_flag_is_checked_as_the_environment_is():
    config = load([*BASE, "--log.level=INFO", "--hdhomerun.timeout=1m30s"], {"OTEL_BARE_METAL_LOG_LEVEL": "error"},
                  registry())
    assert config.log_level == "info" and config.options["hdhomerun"].timeout == 90.0


@pytest.mark.parametrize("level", ["INFO", "Info", "info", "DEBUG", "warn", "ERROR"])
def test_log_level_in_any_case(level):
    assert load([*BASE, f"--log.level={level}"], {}, registry()).log_level == level.lower()


def test_listen_addresses_are_parsed_once_into_the_config():
    config = load([*BASE[:1], "--web.listen-address=[::1]:9", "--web.listen-address=:10"], {}, registry())
    assert [(a.host, a.port) for a in config.listen_address] == [("::1", 9), ("", 10)]
    # The OpenTelemetry variables give the default; our own variable and the flag win over them.
    env = {"OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.2", "OTEL_EXPORTER_PROMETHEUS_PORT": "9999"}
    assert load(BASE[:1], env, registry()).listen_address == ("127.0.0.2:9999",)
    assert load(BASE[:1], {**env, "OTEL_BARE_METAL_WEB_LISTEN_ADDRESS": ":1"}, registry()).listen_address == (":1",)


def test_the_otel_environment_is_resolved_in_the_config():
    env = {"OTEL_METRICS_EXPORTER": "prometheus,otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SERVICE_NAME": "edge"}
    config = load(BASE, env, registry())
    assert config.exporters == {"prometheus", "otlp"}
    assert (config.otlp_protocol, config.otlp_endpoint) == ("grpc", "http://collector:4317")
    assert config.resource.attributes["service.name"] == "edge"
    assert load(BASE, {"OTEL_SDK_DISABLED": "true"}, registry()).sdk_disabled


def test_a_nul_byte_in_a_path_is_a_usage_error(capsys, tmp_path):
    for argv in (["--path.procfs=/pro\0c"], [*BASE, "--hdhomerun.devices-file=/tmp/x\0y"]):
        code, err = run(argv, {}, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------------ node_exporter's flags


def test_node_exporter_filesystem_flags_and_their_deprecated_spellings():
    reg = registry()
    config = load([*BASE, "--collector.filesystem.ignored-mount-points=^/old($|/)",
                   "--collector.filesystem.ignored-fs-types=^tmpfs$"], {}, reg)
    fs = config.options["filesystem"]
    assert (fs.mount_points_exclude, fs.fs_types_exclude) == ("^/old($|/)", "^tmpfs$")
    warned = {dict(n.fields).get("flag") for n in config.warnings if n.msg == "deprecated flag"}
    assert warned == {"--collector.filesystem.ignored-mount-points", "--collector.filesystem.ignored-fs-types"}
    config = load(BASE, {"OTEL_BARE_METAL_COLLECTOR_FILESYSTEM_IGNORED_MOUNT_POINTS": "^/env$"}, reg)
    assert config.options["filesystem"].mount_points_exclude == "^/env$"
    assert any(n.msg == "deprecated environment variable" for n in config.warnings)
    with pytest.raises(ConfigError, match="mutually exclusive"):  # as node_exporter
        load([*BASE, "--collector.filesystem.ignored-fs-types=^a$", "--collector.filesystem.fs-types-exclude=^b$"], {}, reg)
    # --help advertises the current spelling only.
    assert "ignored-mount-points" not in parser(reg).format_help()


def test_node_exporter_web_and_cpu_flags_land_in_the_config():
    config = load([*BASE, "--web.disable-exporter-metrics", "--web.systemd-socket", "--no-collector.cpu.guest"], {},
                  registry())
    assert config.disable_exporter_metrics and config.systemd_socket
    assert config.options["cpu"].guest is False
    default = load(BASE, {}, registry())
    assert not default.disable_exporter_metrics and not default.systemd_socket and default.options["cpu"].guest


def test_guest_time_follows_collector_cpu_guest():
    from otel_bare_metal.app import build_collectors

    reg = registry()
    for argv, guest in ((["--collector.cpu.guest"], True), (["--no-collector.cpu.guest"], False)):
        config = load([*BASE, "--collector.disable-defaults", "--collector.cpu", *argv], {}, reg)
        (cpu,) = build_collectors(config, reg)
        stat = cpu.source.read()
        assert (stat.cpus[0].guest is not None) is guest  # the fixture's cpu0 has guest time
        assert all(c.modes for c in stat.cpus)  # the other modes stay either way


def test_disabling_a_collector_we_do_not_have_is_a_warning_enabling_one_is_an_error(capsys):
    config = load([*BASE, "--no-collector.wifi", "--no-collector.cpu.info", "--no-collector.cpu.guest"], {}, registry())
    assert {dict(n.fields)["flag"] for n in config.warnings if "flag" in n.fields} == {"--no-collector.wifi",
                                                                                      "--no-collector.cpu.info"}
    assert config.options["cpu"].guest is False  # a flag we have is applied, not dropped
    code, err = run([*BASE, "--collector.wifi"], {}, capsys)
    assert code == 2 and "--collector.wifi" in err


def test_flags_are_spelled_out():
    """node_exporter refuses an abbreviated flag; argparse would take --web.max for --web.max-requests."""
    with pytest.raises(ConfigError):
        load([*BASE, "--web.max-req=3"], {}, registry())


# ------------------------------------------------------------------ --help and --version


def test_help_shows_every_default_and_readable_metavars(capsys):
    reg = registry()
    with pytest.raises(SystemExit) as e:
        load(["--help"], {}, reg)
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "__" not in text and "--timeout-offset DURATION" in text
    rows = [*FLAGS, *(row for spec in reg.specs for row in (spec.enable_flag, *spec.flags))]
    flat = " ".join(text.split())
    for row in rows:
        start = flat.index(row.flag + (" " if row.is_bool is False else ","))
        entry = flat[start:flat.index(f"[{row.env}]", start)]
        assert "(default: " in entry, f"{row.flag} shows no default"
    assert "(default: :9464)" in flat and "(default: 2.5s)" in flat and "(default: on)" in flat


def test_version_shows_version_python_and_platform(capsys):
    with pytest.raises(SystemExit) as e:
        load(["--version"], {}, registry())
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert f"version {__version__}" in text
    assert platform.python_version() in text and platform.machine() in text


def test_a_config_can_be_built_directly_and_takes_addresses_as_text():
    config = Config(listen_address="127.0.0.1:0")
    assert config.listen_address == ("127.0.0.1:0",) and config.listen_address[0].port == 0
    with pytest.raises(ValueError, match="listen address"):
        Config(listen_address="nope")


# ------------------------------------------------------------------ a collector's options


def test_a_collector_declares_its_options_as_a_dataclass_or_as_flag_rows():
    from dataclasses import dataclass

    from otel_bare_metal.registry import CollectorSpec, Flag, Registry, option

    @dataclass(frozen=True)
    class DemoOptions:
        level: int = option("--collector.demo.level", 1, "A level.", parse=int, metavar="N")
        mode: str = option("--collector.demo.mode", "fast", "A mode.", choices=("fast", "slow"))
        names: tuple[str, ...] = option("--collector.demo.name", (), "Repeatable.")

    seen = {}

    def source(paths, options):
        seen[type(options).__name__] = options
        return None

    typed = CollectorSpec("demo", source=source, observers=object, options=DemoOptions)
    legacy = CollectorSpec("old", source=source, observers=object, flags=(Flag("--collector.old.x", "a", "X."),))
    assert [f.flag for f in typed.flags] == ["--collector.demo.level", "--collector.demo.mode", "--collector.demo.name"]
    reg = Registry([registry().get("cpu"), typed, legacy])
    config = load([*BASE, "--collector.demo.level=3", "--collector.demo.name=a", "--collector.demo.name=b",
                   "--collector.old.x=b"], {"OTEL_BARE_METAL_COLLECTOR_DEMO_MODE": "SLOW"}, reg)
    assert config.options["demo"] == DemoOptions(level=3, mode="slow", names=("a", "b"))
    assert dict(config.options["old"]) == {"collector_old_x": "b"}
    with pytest.raises(TypeError):
        config.options["old"]["collector_old_x"] = "c"  # read-only
    with pytest.raises(ConfigError, match="OTEL_BARE_METAL_COLLECTOR_DEMO_LEVEL"):
        load(BASE, {"OTEL_BARE_METAL_COLLECTOR_DEMO_LEVEL": "high"}, reg)
    # Not configured at all: each collector gets its defaults.
    assert Config().options_for(typed) == DemoOptions() and load(BASE, {}, reg).options["demo"].level == 1


def test_the_app_reads_the_environment_only_through_the_config(monkeypatch):
    """config.load is the one reader: an app built from a Config ignores the process environment."""
    from otel_bare_metal.app import App

    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-the-environment")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp,console")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    app = App(Config(listen_address="127.0.0.1:0", collectors={}), collectors=[])
    try:
        assert app.pushes == [] and app.page is not None
        assert app.provider._sdk_config.resource.attributes["service.name"] == "otel-bare-metal"
    finally:
        app.close()
    loaded = load(BASE, {"OTEL_SERVICE_NAME": "edge", "OTEL_METRICS_EXPORTER": "prometheus"}, registry())
    app = App(loaded, collectors=[])
    try:
        assert app.provider._sdk_config.resource.attributes["service.name"] == "edge"
    finally:
        app.close()
