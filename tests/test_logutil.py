"""The rate-limited logger: repeats are dropped, and memory and output stay bounded
whatever the number of distinct messages."""

import logging

from otel_bare_metal import limits
from otel_bare_metal.logutil import LogBudget, RateLimitedLog, RateLimitFilter, record_fields


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_key_logs_once_per_interval(caplog):
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("t.once"), interval=60, clock=clock, budget=LogBudget(clock=clock))
    with caplog.at_level(logging.WARNING, logger="t.once"):
        assert log(logging.WARNING, "k", "down", reason="refused")
        assert not log(logging.WARNING, "k", "down", reason="refused")
        clock.now += 61
        assert log(logging.WARNING, "k", "down", reason="refused")
    assert [(r.getMessage(), dict(record_fields(r))) for r in caplog.records] == [("down", {"reason": "refused"})] * 2


def test_many_distinct_messages_keep_memory_and_output_bounded(caplog):
    """100 000 distinct keys (a hostile /proc/stat with that many malformed lines), scraped
    three times a minute for five minutes: the key table never passes its limit, and each
    minute writes at most the budget plus one "suppressed" line."""
    clock = Clock()
    budget = LogBudget(lines=50, interval=60, clock=clock)
    log = RateLimitedLog(logging.getLogger("t.many"), interval=60, clock=clock, max_keys=500, budget=budget)
    per_minute = []
    with caplog.at_level(logging.WARNING):
        for minute in range(5):
            before = len(caplog.records)
            for scrape in range(3):
                for i in range(100_000 // 10):  # a tenth of them per scrape keeps the test quick
                    log(logging.WARNING, f"line {i}", "bad line", line=i)
                assert len(log) <= 500
                clock.now += 20
            per_minute.append(caplog.records[before:])
    for records in per_minute:
        assert len(records) <= 51
    summaries = [r.getMessage() for records in per_minute[1:] for r in records if "suppressed" in r.getMessage()]
    assert len(summaries) == 4, "each later minute says how many lines the previous ones dropped"
    assert summaries[0].startswith("log messages suppressed")
    assert dict(record_fields(per_minute[1][0]))["suppressed"] == 3 * (10_000 - 50)  # the 50 written keys repeat quietly


def test_the_budget_is_shared_by_every_rate_limited_log(caplog):
    """Thousands of devices with a log each (one per /probe target) still write one budget."""
    clock = Clock()
    budget = LogBudget(lines=10, interval=60, clock=clock)
    logs = [RateLimitedLog(logging.getLogger("t.shared"), clock=clock, budget=budget) for _ in range(1000)]
    with caplog.at_level(logging.WARNING, logger="t.shared"):
        for n, log in enumerate(logs):
            log(logging.WARNING, "down", "device is down", device=n)
    assert len(caplog.records) == 10


def test_the_otel_filter_uses_the_same_limits():
    clock = Clock()
    f = RateLimitFilter(prefixes=("opentelemetry",), clock=clock, budget=LogBudget(lines=3, clock=clock))

    def record(name, msg):
        return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, (), None)

    assert f.filter(record("opentelemetry.exporter", "export failed"))
    assert not f.filter(record("opentelemetry.exporter", "export failed")), "a repeat within the interval is dropped"
    assert f.filter(record("otel_bare_metal.app", "export failed")), "other loggers pass untouched"
    passed = sum(f.filter(record("opentelemetry.exporter", f"distinct {i}")) for i in range(1000))
    assert passed == 2, "distinct messages count against the budget"


def test_default_limits_come_from_the_limits_module():
    log = RateLimitedLog(logging.getLogger("t.defaults"))
    assert log._last.maxsize == limits.LOG_KEYS


def test_a_level_that_is_off_spends_no_budget(caplog):
    clock = Clock()
    budget = LogBudget(lines=1, clock=clock)
    log = RateLimitedLog(logging.getLogger("t.level"), clock=clock, budget=budget)
    with caplog.at_level(logging.WARNING, logger="t.level"):
        for i in range(10):
            assert not log(logging.INFO, f"info {i}", "fine", n=i)
        assert log(logging.WARNING, "w", "still written")
    assert [r.getMessage() for r in caplog.records] == ["still written"]
