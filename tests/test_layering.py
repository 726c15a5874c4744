"""The layers stay apart: sources never import opentelemetry, telemetry never does I/O."""

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


SOURCE_FILES = sorted((PKG / "sources").rglob("*.py")) + sorted((PKG / "hdhomerun").rglob("*.py"))
# The example plugin keeps the same rule: its source module reads sysfs and knows no OpenTelemetry.
SOURCE_FILES += sorted(p for p in (ROOT / "examples").rglob("source.py") if "build" not in p.parts)
TELEMETRY_FILES = sorted((PKG / "telemetry").rglob("*.py"))


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
