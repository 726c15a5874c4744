"""Logging helpers: one logger setup and a rate limit for errors that repeat every scrape."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

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
    """Passes each (logger, message template) at most once per ``interval`` seconds.

    The OTLP exporters log every failed attempt; an unreachable Collector would otherwise
    write a line every few seconds for as long as it is down.
    """

    def __init__(self, prefixes: tuple[str, ...], interval: float = 60.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._prefixes = prefixes
        self._interval = interval
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return False
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = now
        return True


class RateLimitedLog:
    """Logs each distinct key at most once per ``interval`` seconds (a dead device or a broken
    mount would otherwise log on every scrape)."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, level: int, key: str, msg: str, *args: object) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return False
            self._last[key] = now
            if len(self._last) > 10_000:  # bounded: forget the oldest half
                for k in sorted(self._last, key=self._last.get)[:5_000]:
                    del self._last[k]
        self._logger.log(level, msg, *args)
        return True
