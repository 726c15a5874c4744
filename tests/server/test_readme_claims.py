"""Every test and benchmark the README names as the backing of a reliability or security claim exists."""

import re

from helpers import ROOT


def _defined_tests() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.M))
    return names


def test_every_test_the_readme_names_exists():
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"::(test_\w+)", readme))
    assert len(named) >= 20, "the README's claims name their tests"
    missing = named - _defined_tests()
    assert not missing, f"README.md names tests that do not exist: {sorted(missing)}"


def test_every_benchmark_the_readme_names_exists():
    readme = (ROOT / "README.md").read_text()
    scripts = set(re.findall(r"bench/(\w+\.py)", readme))
    assert {"slowloris.py", "head_trickle.py", "auth_burst.py"} <= scripts
    missing = {s for s in scripts if not (ROOT / "bench" / s).is_file()}
    assert not missing, f"README.md names benchmarks that do not exist: {sorted(missing)}"
