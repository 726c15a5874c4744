"""The artifacts a user installs.  The package and the example plugin are built as sdist and wheel,
pass ``twine check --strict``, carry every file of their source and the metadata pyproject.toml
declares, and a fresh virtualenv with the two wheels (run from an empty directory) serves /metrics
and the plugin's collector."""

from __future__ import annotations

import ast
import email.parser
import re
import subprocess
import sys
import tarfile
import zipfile
from configparser import ConfigParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from packaging_support import PACKAGE, PLUGIN, PLUGIN_DIR, Built, Installed, run, source_files
from helpers import FIXTURES, fetch, free_port, promtool_check_metrics, samples, stop_process, wait_for_http

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib  # type: ignore[no-redef]

pytestmark = pytest.mark.packaging


def pyproject(tree: Path) -> dict:
    return tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))


def source_version(tree: Path) -> str:
    """``__version__`` as the source declares it (pyproject.toml takes the version from there)."""
    for node in ast.parse((tree / PACKAGE / "__init__.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
            return ast.literal_eval(node.value)
    raise AssertionError("no __version__ in otel_bare_metal/__init__.py")


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return {n for n in z.namelist() if ".dist-info/" not in n}


def dist_info(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        (path,) = [n for n in z.namelist() if n.endswith(f".dist-info/{name}")]
        return z.read(path).decode()


def metadata(wheel: Path):
    return email.parser.Parser().parsestr(dist_info(wheel, "METADATA"))


def entry_points(wheel: Path) -> dict[str, dict[str, str]]:
    parser = ConfigParser(delimiters=("=",))
    parser.optionxform = str  # names are case-sensitive
    parser.read_string(dist_info(wheel, "entry_points.txt"))
    return {group: dict(parser[group]) for group in parser.sections()}


def requirements(lines: list[str]) -> set[str]:
    return {str(Requirement(line)) for line in lines}


# ---------------------------------------------------------------------------- the artifacts


def test_twine_check_strict_passes_on_every_artifact(built: Built):
    artifacts = [built.sdist, built.wheel, built.plugin_sdist, built.plugin_wheel]
    done = run(sys.executable, "-m", "twine", "check", "--strict", *artifacts, cwd=built.sdist.parent)
    assert done.stdout.count("PASSED") == 4, done.stdout


@pytest.mark.parametrize("which", ["package", "plugin"])
def test_the_wheel_holds_every_file_of_the_source_package_and_nothing_else(built: Built, which: str):
    tree, package, wheel = ((built.source, PACKAGE, built.wheel) if which == "package"
                            else (built.source / PLUGIN_DIR, PLUGIN, built.plugin_wheel))
    expected = source_files(tree, package)
    assert f"{package}/__init__.py" in expected
    got = wheel_files(wheel)
    assert not expected - got, f"the wheel misses {sorted(expected - got)}"
    assert not got - expected, f"the wheel has files the source package has not: {sorted(got - expected)}"


@pytest.mark.parametrize("which", ["package", "plugin"])
def test_the_sdist_holds_what_the_wheel_is_built_from(built: Built, which: str):
    tree, package, sdist = ((built.source, PACKAGE, built.sdist) if which == "package"
                            else (built.source / PLUGIN_DIR, PLUGIN, built.plugin_sdist))
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    needed = source_files(tree, package) | {"pyproject.toml", "README.md", "PKG-INFO"}
    assert not needed - names, f"the sdist misses {sorted(needed - names)}"


def test_the_wheel_metadata_is_what_pyproject_declares(built: Built):
    project = pyproject(built.source)["project"]
    meta = metadata(built.wheel)
    assert meta["Name"] == project["name"]
    assert meta["Version"] == source_version(built.source)
    assert meta["Requires-Python"] == project["requires-python"]
    assert meta["License-Expression"] == project["license"]
    assert sorted(meta.get_all("Classifier")) == sorted(project["classifiers"])
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().startswith("# otel-bare-metal")  # the README is the long description

    requires = meta.get_all("Requires-Dist")
    plain = [r for r in requires if "extra ==" not in r]
    assert requirements(plain) == requirements(project["dependencies"])
    assert set(meta.get_all("Provides-Extra")) == set(project["optional-dependencies"])
    for extra, lines in project["optional-dependencies"].items():
        of_extra = [r.split(";")[0] for r in requires if re.search(rf'extra == "{extra}"', r)]
        assert requirements(of_extra) == requirements(lines), extra

    assert entry_points(built.wheel)["console_scripts"] == project["scripts"]
    with zipfile.ZipFile(built.wheel) as z:
        assert f"{PACKAGE}/py.typed" in z.namelist()  # PEP 561: the package's annotations are its API


def test_psutil_is_installed_only_where_the_fallbacks_need_it(built: Built):
    """Linux reads procfs; psutil serves the other systems.  Installed on Linux it would cost the
    exporter about 1 MB of resident memory (the SDK imports it whenever it is there)."""
    (psutil,) = [r for r in map(Requirement, metadata(built.wheel).get_all("Requires-Dist"))
                 if r.name == "psutil" and "extra ==" not in str(r.marker)]  # the test extra has it everywhere
    assert psutil.marker is not None
    assert not psutil.marker.evaluate({"sys_platform": "linux", "extra": ""})
    for other in ("darwin", "win32", "freebsd14"):
        assert psutil.marker.evaluate({"sys_platform": other, "extra": ""}), other


def test_the_plugin_wheel_metadata_is_what_its_pyproject_declares(built: Built):
    project = pyproject(built.source / PLUGIN_DIR)["project"]
    meta = metadata(built.plugin_wheel)
    assert (meta["Name"], meta["Version"]) == (project["name"], project["version"])
    assert requirements(meta.get_all("Requires-Dist")) == requirements(project["dependencies"])
    assert "otel-bare-metal" in {Requirement(r).name for r in meta.get_all("Requires-Dist")}
    assert entry_points(built.plugin_wheel)["otel_bare_metal.collectors"] == project["entry-points"]["otel_bare_metal.collectors"]


# ---------------------------------------------------------------------------- installed from the wheels


def test_installed_command_prints_the_version(installed: Installed, built: Built):
    done = run(installed.command, "--version", cwd=installed.workdir)
    assert source_version(built.source) in (done.stdout + done.stderr).split()


def test_installed_package_is_the_wheel_and_every_module_imports(installed: Installed, built: Built):
    modules = sorted(
        ".".join(Path(f).with_suffix("").parts).removesuffix(".__init__")
        for f in source_files(built.source, PACKAGE) if f.endswith(".py") and not f.endswith("__main__.py")
    )
    script = (
        "import importlib, importlib.resources, sys, otel_bare_metal\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(otel_bare_metal.__file__)\n"
        "print(importlib.resources.files('otel_bare_metal').joinpath('py.typed').is_file())\n"
    )
    done = run(installed.python, "-c", script, *modules, cwd=installed.workdir)
    location, typed = done.stdout.split()
    assert Path(location).is_relative_to(installed.venv / "lib"), location
    assert typed == "True"


def serve(installed: Installed, *args: str) -> tuple[str, dict]:
    """Start the installed command on a loopback port, scrape /metrics once, stop it."""
    port = free_port()
    proc = subprocess.Popen([str(installed.command), f"--web.listen-address=127.0.0.1:{port}", *args],
                            cwd=installed.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        status, headers, body = fetch(f"http://127.0.0.1:{port}/metrics")
    finally:
        stop_process(proc)
    assert status == 200, body
    text = body.decode()
    return text, samples(text)


def test_installed_exporter_serves_metrics_of_this_machine(installed: Installed, built: Built):
    text, s = serve(installed)
    assert any(name == "system_cpu_time_seconds_total" and dict(labels).get("cpu_mode") == "user" for name, labels in s), text[:2000]
    (info,) = [dict(labels) for name, labels in s if name == "target_info"]
    assert info["service_version"] == source_version(built.source)
    check = promtool_check_metrics(text)
    assert check.returncode == 0, check.stdout + check.stderr


def test_installed_plugin_collector_flag_produces_its_metric(installed: Installed):
    text, s = serve(installed, f"--path.procfs={FIXTURES / 'proc'}", f"--path.sysfs={FIXTURES / 'sys'}",
                    "--no-collector.filesystem", "--collector.cpufreq")
    assert s[("system_cpu_frequency_hertz", (("cpu_logical_number", "0"),))] == 2.4e9, text[:2000]
    assert s[("otel_bare_metal_collector_success", (("collector", "cpufreq"),))] == 1
