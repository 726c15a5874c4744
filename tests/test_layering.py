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
