"""``./scripts/run`` runs the checkout's current code, never an older installed copy.

A copy of the checkout gets a virtualenv that already holds a stale, non-editable install of the
package (what an earlier ``scripts/run`` left behind), installed after pyproject.toml last changed,
so the script has nothing to install.  The dependencies come from the test's own environment
through a ``.pth`` file; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from helpers import ROOT


def _site_packages(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))


def _checkout(tmp: Path) -> Path:
    co = tmp / "checkout"
    co.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, co / name)
    shutil.copytree(ROOT / "scripts", co / "scripts")
    shutil.copytree(ROOT / "otel_bare_metal", co / "otel_bare_metal", ignore=shutil.ignore_patterns("__pycache__"))
    return co


def _stale_venv(co: Path) -> Path:
    env = co / ".venv"
    venv.EnvBuilder(with_pip=False).create(env)
    site = _site_packages(env)
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    stale = site / "otel_bare_metal"
    shutil.copytree(co / "otel_bare_metal", stale, ignore=shutil.ignore_patterns("__pycache__"))
    init = stale / "__init__.py"
    init.write_text(init.read_text().replace("__version__ = ", "__version__ = '0.0.0+stale'  # ", 1))
    script = env / "bin" / "otel-bare-metal"
    script.write_text(f"#!{env / 'bin' / 'python'}\nimport sys\nfrom otel_bare_metal.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    (env / ".otel-bare-metal-installed").touch()  # the dependencies are current: pyproject.toml is older
    return env


def _version(co: Path) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    environ.update(PIP_NO_INDEX="1", PYTHON=sys.executable)
    result = subprocess.run([str(co / "scripts" / "run"), "--version"], capture_output=True, text=True, timeout=300,
                            env=environ, cwd="/")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()[0]


def test_scripts_run_picks_up_an_edit(tmp_path):
    co = _checkout(tmp_path)
    _stale_venv(co)
    from otel_bare_metal import __version__

    assert _version(co) == f"otel-bare-metal, version {__version__}"  # not the stale install's 0.0.0+stale
    init = co / "otel_bare_metal" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{__version__}"', '__version__ = "9.9.9+edited"'))
    assert "9.9.9+edited" in init.read_text()
    assert _version(co) == "otel-bare-metal, version 9.9.9+edited"
