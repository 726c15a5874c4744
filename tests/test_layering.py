"""The layers stay apart: sources never import opentelemetry, telemetry never does I/O.

A source is what reads the machine or a device: the procfs library, the HDHomeRun protocol
library, and every module of a collector's folder except its spec (``__init__.py``), its
metrics (``metrics.py``) and the HTTP-facing ``/probe`` modules."""

import ast
from pathlib import Path

import pytest

from helpers import ROOT

PKG = ROOT / "otel_bare_metal"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


NOT_SOURCES = ("__init__.py", "metrics.py", "probe.py")
SOURCE_FILES = [PKG / "procfs.py"] + sorted((PKG / "hdhr").rglob("*.py"))
SOURCE_FILES += sorted(p for p in (PKG / "collectors").rglob("*.py") if p.name not in NOT_SOURCES)
# The example plugin keeps the same rule: its source module reads sysfs and knows no OpenTelemetry.
SOURCE_FILES += sorted(p for p in (ROOT / "examples").rglob("source.py") if "build" not in p.parts)
# Observers map records and never read anything themselves.
TELEMETRY_FILES = sorted((PKG / "telemetry").rglob("*.py")) + sorted((PKG / "collectors").rglob("metrics.py"))


@pytest.mark.parametrize("path", SOURCE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sources_never_import_opentelemetry(path):
    bad = {m for m in imported_modules(path) if m.split(".")[0] in ("opentelemetry", "prometheus_client")}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", TELEMETRY_FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_telemetry_opens_no_file_or_socket(path):
    io_modules = ("socket", "http", "urllib.request", "subprocess", "ssl")
    bad = {m for m in imported_modules(path) if any(m == io or m.startswith(io + ".") for io in io_modules)}
    assert not bad, f"{path} imports {bad}"
    tree = ast.parse(path.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "open"]
    assert not calls, f"{path} calls open()"


def test_there_are_files_to_check():
    assert len(SOURCE_FILES) >= 5 and len(TELEMETRY_FILES) >= 3


def test_collectors_never_import_the_exposition_layer_or_the_app():
    """A collector's folder (its /probe included) is handed what it needs through its spec; the
    HTTP server, the Prometheus page and the app stay above it."""
    above = ("otel_bare_metal.exposition", "otel_bare_metal.server", "otel_bare_metal.app", "otel_bare_metal.cli",
             "prometheus_client")
    files = sorted((PKG / "collectors").rglob("*.py"))
    assert files
    bad = {str(p.relative_to(PKG)): sorted(m for m in imported_modules(p) if m.startswith(above)) for p in files}
    assert not {p: m for p, m in bad.items() if m}, bad


def test_the_app_knows_no_collector_by_name():
    """The app wires specs; what a collector serves or needs comes through its spec."""
    text = (PKG / "app.py").read_text().lower()
    assert "hdhomerun" not in text and "probe" not in text.replace("liveness probe", "")
    assert not {m for m in imported_modules(PKG / "app.py") if m.startswith("otel_bare_metal.collectors")}


def test_the_http_transport_never_imports_the_web_config_format():
    """TLS and auth reach the server as callables; its modules know nothing of --web.config.file."""
    transport = [p for p in sorted((PKG / "server").glob("*.py")) if p.name not in ("webconfig.py", "__init__.py")]
    assert transport, "no server modules found"
    for path in transport:
        bad = {m for m in imported_modules(path) if m.endswith("webconfig") or m in ("yaml", "bcrypt")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
