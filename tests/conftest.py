import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a skipped test is a failure: scripts/test installs every tool the tests
    meet (promtool, prometheus, hdhomerun_config, node_exporter, curl, openssl), so a skip can
    only mean a missing install step."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"


@pytest.fixture(autouse=True)
def _fresh_log_budget():
    """Every rate-limited log shares one process-wide budget of lines per minute; each test
    starts with a full one, so a test that logs a lot cannot silence the next test's lines."""
    from otel_bare_metal.logutil import BUDGETS

    for budget in BUDGETS:
        budget.reset()
    yield
