"""Logging helpers: one logger setup and a rate limit for errors that repeat every scrape."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from otel_bare_metal import limits

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR}


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=LEVELS[level],
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RateLimitFilter(prefixes=("opentelemetry",)))


class RateLimitFilter(logging.Filter):
    """Passes each (logger, message template) of the loggers under ``prefixes`` at most once per
    ``interval`` seconds, through the same :class:`RateLimitedLog` limits as our own messages.

    The OTLP exporters log every failed attempt; an unreachable Collector would otherwise
    write a line every few seconds for as long as it is down.
    """

    def __init__(self, prefixes: tuple[str, ...], interval: float = limits.LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, budget: "LogBudget | None" = None):
        super().__init__()
        self._prefixes = prefixes
        self._limit = RateLimitedLog(logging.getLogger(__name__), interval, clock=clock, budget=budget)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        return self._limit.allow((record.name, str(record.msg)))


class LogBudget:
    """Lines all rate-limited logs together may write per interval.

    Past the budget, lines are counted instead of written; the first line allowed in a later
    interval is preceded by one "N log messages suppressed" warning.  So however many distinct
    messages arrive, the output is at most ``lines`` + 1 per interval.
    """

    def __init__(self, lines: int = limits.LOG_LINES_PER_INTERVAL, interval: float = limits.LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.lines = lines
        self.interval = interval
        self._clock = clock
        self._window_start = clock()
        self._used = 0
        self.suppressed = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._window_start, self._used, self.suppressed = self._clock(), 0, 0

    def take(self) -> tuple[bool, int]:
        """(whether one more line may be written now, lines suppressed since the last report)."""
        with self._lock:
            now = self._clock()
            if now - self._window_start >= self.interval:
                self._window_start = now
                self._used = 0
            if self._used >= self.lines:
                self.suppressed += 1
                return False, 0
            self._used += 1
            report, self.suppressed = self.suppressed, 0
            return True, report


#: The budget every rate-limited log shares unless given its own.
BUDGET = LogBudget()
_summary = logging.getLogger(__name__)


class RateLimitedLog:
    """Logs each distinct key at most once per ``interval`` seconds (a dead device or a broken
    mount would otherwise log on every scrape), within a process-wide :class:`LogBudget`.

    Memory is bounded: at most ``max_keys`` keys are remembered, the least recently logged
    forgotten first (a forgotten key may log again early; the budget still holds).
    """

    def __init__(self, logger: logging.Logger, interval: float = limits.LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = limits.LOG_KEYS,
                 budget: LogBudget | None = None):
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: limits.BoundedCache[object, float] = limits.BoundedCache(max_keys, lru=False)
        self._budget = budget if budget is not None else BUDGET
        self._lock = threading.Lock()

    def allow(self, key: object) -> bool:
        """Whether a line for ``key`` may be written now (and note that it is)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return False
            allowed, suppressed = self._budget.take()
            if allowed:
                self._last.put(key, now)
        if suppressed:
            _summary.warning("%d log messages suppressed in the last %.0f s (more distinct messages than "
                             "the rate limit allows)", suppressed, self._budget.interval)
        return allowed

    def __call__(self, level: int, key: object, msg: str, *args: object) -> bool:
        if not self._logger.isEnabledFor(level) or not self.allow(key):  # a line not written costs no budget
            return False
        self._logger.log(level, msg, *args)
        return True

    def __len__(self) -> int:
        return len(self._last)
