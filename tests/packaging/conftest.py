"""What a user installs: the sdist and wheel of the package and of the example plugin, built by
``python -m build`` from a copy of the tree, and a fresh virtualenv with the two wheels installed
from a directory that holds no source."""

from __future__ import annotations

import shutil
import sys
from typing import Iterator

import pytest

from helpers import ROOT
from packaging_support import PLUGIN_DIR, Built, Installed, build, junk, run


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=junk, symlinks=True)
    sdist, wheel = build(source, work / "dist")
    plugin_sdist, plugin_wheel = build(source / PLUGIN_DIR, work / "plugin-dist")
    return Built(source, sdist, wheel, plugin_sdist, plugin_wheel)


@pytest.fixture(scope="session")
def installed(built: Built, tmp_path_factory) -> Iterator[Installed]:
    """A fresh virtualenv with only the two wheels (and their dependencies from the index) in it;
    removed afterwards (it is the biggest thing a test run leaves in its temporary directory)."""
    work = tmp_path_factory.mktemp("installed")
    venv, workdir = work / "venv", work / "cwd"
    workdir.mkdir()
    run(sys.executable, "-m", "venv", venv, cwd=workdir)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
        built.wheel, built.plugin_wheel, cwd=workdir)
    yield Installed(venv, workdir)
    shutil.rmtree(venv, ignore_errors=True)
