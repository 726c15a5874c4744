"""Helpers of the packaging tests: running a command away from the tree, the files of a source
package, building with ``python -m build``."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


PACKAGE = "otel_bare_metal"
PLUGIN = "otel_bare_metal_cpufreq"
PLUGIN_DIR = Path("examples") / "cpufreq"
# What a checkout may hold that is not part of it: virtualenvs, caches, build output.
JUNK = {".git", ".hypothesis", ".pytest_cache", ".mypy_cache", "__pycache__", "build", "dist"}


def junk(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in JUNK or n.startswith(".venv") or n.endswith((".egg-info", ".pyc"))}


def run(*command: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a command outside the source tree, with nothing of the test's own environment that
    would point Python at the tree."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH"}}
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def source_files(tree: Path, package: str) -> set[str]:
    """Every file of a package in a source tree, as paths relative to the tree ('otel_bare_metal/cli.py')."""
    return {p.relative_to(tree).as_posix() for p in (tree / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@dataclass(frozen=True)
class Built:
    source: Path  # the copy of the tree that was built
    sdist: Path
    wheel: Path
    plugin_sdist: Path
    plugin_wheel: Path


def build(project: Path, outdir: Path) -> tuple[Path, Path]:
    """``python -m build``: the sdist, then the wheel from the unpacked sdist, as a release is made."""
    run(sys.executable, "-m", "build", "--outdir", outdir, project, cwd=outdir.parent)
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return sdist, wheel


@dataclass(frozen=True)
class Installed:
    venv: Path
    workdir: Path  # an empty directory to run from: no source tree around

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "otel-bare-metal"
