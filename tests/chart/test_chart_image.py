"""What can be checked of the Dockerfile without a Docker engine: the final stage runs as a
non-root user, has no compilers, its entrypoint is the console script, and the chart's default
image is the one the Dockerfile builds."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from chart_support import CHART_DIR, REPO

COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cc|make|cmake|rustc|cargo|gfortran|[a-z0-9.+-]*-dev)\b")


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    result: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            result.append([])
        if result:
            result[-1].append((instruction, args.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def values() -> dict:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def test_multi_stage_slim_python_base():
    assert len(stages()) >= 2
    text = (REPO / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base)
    assert final_stage()[0] == ("FROM", "${PYTHON_IMAGE}")


def test_final_stage_runs_as_numeric_non_root_user():
    users = [args for inst, args in final_stage() if inst == "USER"]
    assert users, "no USER in the final stage"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0
    assert not group or (group.isdigit() and int(group) != 0)
    # The chart runs the pods as the same user.
    v = values()
    assert v["podSecurityContext"]["runAsUser"] == int(user) == v["containerSecurityContext"]["runAsUser"]


def test_entrypoint_is_the_console_script():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoints = [args for inst, args in final_stage() if inst == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT in the final stage"
    entry = json.loads(entrypoints[-1])  # exec form, so signals reach the exporter
    assert entry == ["otel-bare-metal"]
    assert entry[0] in scripts


def test_final_stage_installs_no_compilers():
    for inst, args in final_stage():
        if inst == "RUN":
            assert not COMPILERS.search(args), f"compiler in the final stage: RUN {args}"
            assert "pip install" not in args, "packages are built in the first stage and copied"
    copies = [args for inst, args in final_stage() if inst == "COPY"]
    assert any(a.startswith("--from=") for a in copies)


def test_exposes_the_chart_port():
    exposed = [args for inst, args in final_stage() if inst == "EXPOSE"]
    assert exposed == [str(values()["port"])]


def test_chart_default_image_is_what_the_dockerfile_builds():
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    image = values()["image"]
    assert image["tag"] == "" and image["digest"] == ""  # so the tag is the appVersion
    from otel_bare_metal import __version__

    assert chart["appVersion"] == __version__
    name = f"{image['registry']}/{image['repository']}" if image["registry"] else image["repository"]
    reference = f"{name}:{chart['appVersion']}"
    assert reference in (REPO / "Dockerfile").read_text()
    assert name in (CHART_DIR / "README.md").read_text()


def test_dockerignore_keeps_what_the_build_copies():
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    build = stages()[0]
    for inst, args in build:
        if inst == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert f"!{source.rstrip('/')}" in ignore or f"!{source}" in ignore or f"!{source.rstrip('/')}/" in ignore, source
