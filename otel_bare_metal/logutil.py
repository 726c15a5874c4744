r"""Logging helpers: the log format (Prometheus ``promslog`` style), one logger setup and a rate
limit for errors that repeat every scrape.

Every line the exporter writes to stderr after start-up goes through ``setup_logging``'s handler,
in one of two formats chosen with ``--log.format`` (as node_exporter's flag of the same name):

* ``logfmt`` (default), what Go's ``log/slog`` text handler behind promslog writes::

    time=2026-12-02T12:00:00.000Z level=info source=app.py:151 msg="listening on" address=:9464

  ``time`` is UTC with milliseconds, ``level`` is ``debug``, ``info``, ``warn`` or ``error``,
  ``source`` is ``file:line``.  A value is written bare unless it is empty or holds a space, ``=``,
  ``"``, a control or other non-printing character; then it is double-quoted with JSON escapes
  (``\\``, ``\"``, ``\n``, ``\uXXXX``), which logfmt parsers (go-logfmt, Loki, Vector) read back.
* ``json``: one JSON object per line with the same keys in the same order.

Structured fields: ``log.info("listening on", extra=fields(address=":9464"))``.  An exception
adds ``err`` (its one-line text) and, at debug level, ``trace`` (the traceback) — never a
multi-line write.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import traceback
from typing import Callable

from otel_bare_metal import limits

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("logfmt", "json")
_FIELDS = "obm_fields"  # the LogRecord attribute that carries structured fields


def fields(**kv: object) -> dict[str, dict[str, object]]:
    """``extra=`` for a log call: ``key=value`` pairs after ``msg``, in the order given."""
    return {_FIELDS: kv}


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", _FIELDS}


def level_name(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _pairs(record: logging.LogRecord) -> list[tuple[str, object]]:
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
    try:
        message = record.getMessage()
    except Exception as e:  # a bad %-format in some library's call must not lose the line
        message = f"{record.msg!r} (unformattable: {e})"
    pairs: list[tuple[str, object]] = [
        ("time", when),
        ("level", level_name(record.levelno)),
        ("source", f"{os.path.basename(record.pathname)}:{record.lineno}"),
        ("msg", message),
    ]
    if not record.name.startswith("otel_bare_metal"):  # third-party loggers (opentelemetry, urllib3, grpc)
        pairs.append(("logger", record.name))
    for key, value in (getattr(record, _FIELDS, None) or {}).items():
        pairs.append((key, value))
    for key, value in record.__dict__.items():  # plain ``extra={...}`` keys, in the order given
        if key not in _RECORD_ATTRIBUTES:
            pairs.append((key, value))
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        pairs.append(("err", f"{type(exc).__name__}: {exc}"))
        if record.levelno <= logging.DEBUG or logging.getLogger().isEnabledFor(logging.DEBUG):
            pairs.append(("trace", "".join(traceback.format_exception(*record.exc_info)).rstrip()))
    return pairs


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _needs_quoting(text: str) -> bool:
    if not text:
        return True
    for ch in text:
        if ch in ' ="\\' or not ch.isprintable() or ch.isspace():
            return True
    return False


def _json_string(text: object) -> str:
    """JSON text with every non-printing character escaped (json.dumps leaves e.g. U+2028, which
    str.splitlines() and JavaScript treat as a line break, unescaped when ensure_ascii is off)."""
    out = json.dumps(text, ensure_ascii=False, default=str, separators=(",", ":"))
    if out.isprintable():
        return out
    return "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in out)


def logfmt_value(value: object) -> str:
    text = _text(value)
    return _json_string(text) if _needs_quoting(text) else text


def logfmt_key(key: str) -> str:
    cleaned = "".join(ch if ch.isprintable() and not ch.isspace() and ch not in '="' else "_" for ch in str(key))
    return cleaned or "_"


class LogfmtFormatter(logging.Formatter):
    """promslog's logfmt: ``time=… level=… source=… msg=… key=value …`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{logfmt_key(k)}={logfmt_value(v)}" for k, v in _pairs(record))


class JSONFormatter(logging.Formatter):
    """promslog's JSON: one object per line, the same keys as logfmt."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {}
        for key, value in _pairs(record):
            if key in out:  # a field may not overwrite time/level/source/msg
                key = "field_" + key
            out[key] = value if isinstance(value, (bool, int, float, str)) or value is None else str(value)
        return _json_string(out)


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: want logfmt or json")
    return JSONFormatter() if log_format == "json" else LogfmtFormatter()


def setup_logging(level: str, log_format: str = "logfmt", stream=None) -> logging.Handler:
    """Route every log record (ours, the OpenTelemetry SDK's, Python warnings, uncaught thread
    exceptions) through one stderr handler in ``log_format``.  Returns the handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RateLimitFilter(prefixes=("opentelemetry",)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    logging.captureWarnings(True)

    def thread_exception(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        logging.getLogger("otel_bare_metal").error(
            "uncaught exception in thread", exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            extra=fields(thread=name))

    threading.excepthook = thread_exception
    return handler


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


#: The budget every rate-limited log shares unless given its own: configured devices, mounts,
#: sources, the server, the OTel SDK's loggers.
BUDGET = LogBudget()
#: The budget of ``/probe`` targets (their devices and the probe itself): probes are chosen by
#: whoever scrapes, so however many dead targets are probed, they cannot use up the lines that
#: report a configured device or a broken mount.
PROBE_BUDGET = LogBudget()
#: Every budget, for tests and for anything that resets them all.
BUDGETS = (BUDGET, PROBE_BUDGET)
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
        self._logger.log(level, msg, *args, stacklevel=2)  # source= names the caller, not this line
        return True

    def __len__(self) -> int:
        return len(self._last)
