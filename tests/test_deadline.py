"""otel_bare_metal/deadline.py: where a collection's deadline is made, and its margins."""

import ast

from helpers import ROOT
from otel_bare_metal import deadline
from otel_bare_metal.deadline import remaining, scrape_budget, scrape_deadline


def test_scrape_budget_follows_the_header_less_the_offset():
    assert scrape_budget("2", 0.5) == 1.5
    assert scrape_budget("10", 0.25) == 9.75
    assert scrape_budget(None, 0.5) == 9.5  # no header: Prometheus's default 10 s
    assert scrape_budget("nonsense", 0.5) == 9.5
    assert scrape_budget("nan", 0.5) == 9.5
    assert scrape_budget("-3", 0.5) == 9.5
    assert scrape_budget("0.4", 0.5) == 0.2  # smaller than the offset: half the header


def test_a_scrape_deadline_is_one_absolute_value_from_when_it_is_served():
    assert scrape_deadline("2", 0.5, now=100.0) == 101.5
    assert scrape_deadline(None, 0.5, now=7.0) == 16.5
    assert remaining(101.5, now=100.0) == 1.5
    assert remaining(101.5, now=102.0) == 0.0  # past: nothing left, never negative


def test_every_margin_is_named_and_documented_here():
    """Each margin is a module constant with a comment saying why; no other module defines one."""
    source = (ROOT / "otel_bare_metal" / "deadline.py").read_text()
    lines = source.splitlines()
    margins = ("DEFAULT_SCRAPE_TIMEOUT", "DEFAULT_TIMEOUT_OFFSET", "SDK_COLLECT_MARGIN", "SDK_CALLBACK_SLACK",
               "SOURCE_MARGIN", "GRACE", "HANDOVER")
    for name in margins:
        assert isinstance(getattr(deadline, name), float) and getattr(deadline, name) > 0
        (index,) = [i for i, line in enumerate(lines) if line.startswith(f"{name} = ")]
        assert lines[index - 1].startswith("#: "), f"{name} has no comment saying why it exists"
    for path in (ROOT / "otel_bare_metal").rglob("*.py"):
        if path.name == "deadline.py":
            continue
        assigned = {t.id for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
        assert not assigned & set(margins), f"{path} defines a deadline margin of its own"
