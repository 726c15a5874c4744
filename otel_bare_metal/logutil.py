r"""Logging helpers: the log format (Prometheus ``promslog``), one logger setup and a rate
limit for errors that repeat every scrape.

Every line the exporter writes to stderr after start-up goes through ``setup_logging``'s handler,
in one of two formats chosen with ``--log.format`` (as node_exporter's flag of the same name),
each exactly as promslog (prometheus/common, behind node_exporter 1.12) has Go's ``log/slog``
write it:

* ``logfmt`` (default), slog's text handler::

    time=2026-12-02T12:00:00.000Z level=INFO source=app.py:151 msg=listening address=:9464

  ``time`` is local time (``Z`` in UTC, else ``+hh:mm``) with milliseconds; ``level`` is
  ``DEBUG``, ``INFO``, ``WARN`` or ``ERROR``; ``source`` is ``file:line``.  A value is written
  bare unless it is empty or holds a space, ``=``, ``"``, a control or other non-printing
  character; then it is double-quoted.  Numbers are written as Go writes them (``5``, ``0.25``,
  ``1e+06``).
* ``json``, slog's JSON handler: one object per line with the same keys in the same order;
  ``time`` with as many fraction digits as it has (RFC 3339 "nano"), numbers as JSON numbers.

A field named ``time``, ``level`` or ``source`` is renamed ``logged_<key>``, as promslog
does (and so is one named ``msg``, so that no key appears twice).  Quoted logfmt values use
JSON escapes (``\\``, ``\"``, ``\n``, ``\uXXXX``) where Go writes ``\xNN`` for control bytes:
the logfmt readers behind Loki, Vector and go-logfmt read JSON escapes back.

A message is a constant text and every value goes in a field:
``log.info("listening", extra=fields(address=":9464"))``, or a :class:`Message` when the
line is made before logging is set up.  An exception adds ``err`` (its one-line text) and, at
debug level, ``trace`` (the traceback): never a multi-line write.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
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
HEAD = ("time", "level", "source", "msg")
RESERVED_PREFIX = "logged_"  # promslog's prefix for a field that would repeat a head key


def fields(**kv: object) -> dict[str, dict[str, object]]:
    """``extra=`` for a log call: ``key=value`` pairs after ``msg``, in the order given."""
    return {_FIELDS: kv}


class Message(str):
    """A log message made where logging is not at hand (a pure function's warnings, a start-up
    check): its constant text, with its values as :attr:`fields`.  ``log.warning(message)``
    writes the fields after ``msg`` like ``extra=fields(...)`` would."""

    fields: dict[str, object]

    def __new__(cls, text: str, **kv: object) -> "Message":
        self = super().__new__(cls, text)
        self.fields = kv
        return self

    def __repr__(self) -> str:
        return f"Message({str(self)!r}, {self.fields!r})"


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", _FIELDS}


def level_name(levelno: int) -> str:
    """slog's level names, as promslog writes them (CRITICAL, which slog lacks, is ERROR)."""
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARN"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


def _local_time(created: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(created, datetime.timezone.utc).astimezone()


def _zone(when: datetime.datetime) -> str:
    offset = when.utcoffset() or datetime.timedelta(0)
    if not offset:
        return "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def text_time(created: float) -> str:
    """slog's text handler: RFC 3339, local time, exactly three fraction digits."""
    when = _local_time(created)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{when.microsecond // 1000:03d}" + _zone(when)


def json_time(created: float) -> str:
    """slog's JSON handler: RFC 3339 with the fraction's trailing zeros dropped (Go's RFC3339Nano)."""
    when = _local_time(created)
    fraction = f"{when.microsecond:06d}".rstrip("0")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + _zone(when)


def record_fields(record: logging.LogRecord) -> list[tuple[str, object]]:
    """The fields of a record, in order: a :class:`Message`'s, then ``extra=fields(...)``, then
    plain ``extra={...}`` keys."""
    out = list(record.msg.fields.items()) if isinstance(record.msg, Message) else []
    out.extend((getattr(record, _FIELDS, None) or {}).items())
    out.extend((key, value) for key, value in record.__dict__.items() if key not in _RECORD_ATTRIBUTES)
    return out


def _pairs(record: logging.LogRecord) -> list[tuple[str, object]]:
    try:
        message = record.getMessage()
    except Exception as e:  # a bad %-format in some library's call must not lose the line
        message = f"{record.msg!r} (unformattable: {e})"
    pairs: list[tuple[str, object]] = [
        ("time", record.created),  # formatted by each formatter
        ("level", level_name(record.levelno)),
        ("source", f"{os.path.basename(record.pathname)}:{record.lineno}"),
        ("msg", message),
    ]
    extra = record_fields(record)
    if not record.name.startswith("otel_bare_metal"):  # third-party loggers (opentelemetry, urllib3, grpc)
        extra.insert(0, ("logger", record.name))
    for key, value in extra:
        pairs.append((RESERVED_PREFIX + key if key in HEAD else key, value))
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        pairs.append(("err", f"{type(exc).__name__}: {exc}"))
        if record.levelno <= logging.DEBUG or logging.getLogger().isEnabledFor(logging.DEBUG):
            pairs.append(("trace", "".join(traceback.format_exception(*record.exc_info)).rstrip()))
    return pairs


def _digits(value: float) -> tuple[str, int]:
    """The shortest decimal digits that read back as ``value`` (> 0) and where the point goes:
    ``value == 0.<digits> * 10**point``."""
    mantissa, _, exponent = f"{value!r}".partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    return digits.rstrip("0") or "0", point


def go_float(value: float, json_number: bool = False) -> str:
    """A float as Go writes it: ``strconv.FormatFloat(f, 'g', -1, 64)`` (slog's text handler), or
    as ``encoding/json`` does (slog's JSON handler): shortest digits, no ``.0`` on whole numbers."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _digits(abs(value))
    exponent = point - 1
    if json_number:
        scientific = abs(value) < 1e-6 or abs(value) >= 1e21
    else:
        scientific = exponent < -4 or exponent >= 6  # 'g' with the shortest precision decides with 6
    if scientific:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        width = 1 if json_number else 2  # encoding/json trims e-07 to e-7
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):0{width}d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def _needs_quoting(text: str) -> bool:
    """slog's rule: empty, or a space, ``=``, ``"``, a control or non-printing character (a
    backslash alone is written bare)."""
    if not text:
        return True
    for ch in text:
        if ch in ' ="' or not ch.isprintable() or ch.isspace():
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
        pairs = _pairs(record)
        pairs[0] = ("time", text_time(record.created))
        return " ".join(f"{logfmt_key(k)}={logfmt_value(v)}" for k, v in pairs)


class JSONFormatter(logging.Formatter):
    """promslog's JSON: one object per line, the same keys as logfmt."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = _pairs(record)
        pairs[0] = ("time", json_time(record.created))
        out: list[str] = []
        seen: set[str] = set()
        for key, value in pairs:
            while key in seen:  # two fields of one name (a plain extra= key and a fields() one)
                key = RESERVED_PREFIX + key
            seen.add(key)
            out.append(_json_string(key) + ":" + _json_value(value))
        return "{" + ",".join(out) + "}"


def _json_value(value: object) -> str:
    if value is None or isinstance(value, bool):
        return _json_string(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        text = go_float(value, json_number=True)
        return text if math.isfinite(value) else _json_string(text)  # JSON has no NaN or Inf
    return _json_string(value if isinstance(value, str) else str(value))


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
            "uncaught exception in thread", exc_info=args.exc_value,  # the exception carries its type and traceback
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
            _summary.warning("log messages suppressed: more distinct messages than the rate limit allows",
                             extra=fields(suppressed=suppressed, interval_seconds=self._budget.interval))
        return allowed

    def __call__(self, level: int, key: object, msg: str, **kv: object) -> bool:
        """Log ``msg`` (constant text) with the fields ``kv`` unless ``key`` logged within the interval."""
        if not self._logger.isEnabledFor(level) or not self.allow(key):  # a line not written costs no budget
            return False
        # source= names the caller, not this line
        self._logger.log(level, msg, extra=fields(**kv) if kv else None, stacklevel=2)
        return True

    def __len__(self) -> int:
        return len(self._last)
