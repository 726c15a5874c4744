"""The habits that keep the code easy to change: ruff and mypy pass, configured in pyproject.toml.

A ``# type: ignore`` in the package carries its reason on the same line."""

import re
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.lint  # one interpreter is enough: scripts/test skips them on the others


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_passes():
    result = _run("ruff", "check", "--no-cache", "otel_bare_metal", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_passes_on_the_package():
    result = _run("mypy", "--no-incremental")  # files and options: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(?P<rest>.*)$")


@pytest.mark.parametrize("path", sorted((ROOT / "otel_bare_metal").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_type_ignore_says_why(path):
    bare = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = IGNORE.search(line)
        if m and not re.search(r"#\s*\S", m.group("rest")):
            bare.append(f"{path.name}:{number}: {line.strip()}")
    assert not bare, "a type: ignore without a reason on its line:\n" + "\n".join(bare)
