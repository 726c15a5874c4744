"""A strict logfmt parser for the tests: a line is accepted only if it is exactly

    line  = pair *(" " pair)
    pair  = key "=" value
    key   = 1*(any printable character but space, "=", '"')
    value = bare / quoted
    bare  = *(any printable character but space, "=", '"')      (an empty bare value is refused:
                                                                  promslog quotes empty strings)
    quoted = '"' *(char / escape) '"'   with JSON escapes only

with no leading, trailing or doubled spaces and no key twice, and it additionally checks the
promslog shape (Go's log/slog behind prometheus/common's promslog): ``time``, ``level``,
``source``, ``msg`` first, in that order; ``level`` one of slog's upper-case names; ``time``
RFC 3339 with exactly three fraction digits in logfmt, as many as needed (Go's RFC3339Nano)
in JSON; ``source`` ``file:line``.
"""

from __future__ import annotations

import json
import re

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)")
JSON_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?(Z|[+-]\d\d:\d\d)")
SOURCE = re.compile(r"[^:\s]+\.py:\d+")
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
HEAD = ["time", "level", "source", "msg"]


class LogfmtError(ValueError):
    pass


def _bare_char(ch: str) -> bool:
    return ch.isprintable() and not ch.isspace() and ch not in '="'


def parse_logfmt(line: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(line)
    if not line:
        raise LogfmtError("empty line")
    while True:
        start = i
        while i < n and _bare_char(line[i]):
            i += 1
        key = line[start:i]
        if not key:
            raise LogfmtError(f"empty or invalid key at column {start}: {line!r}")
        if i >= n or line[i] != "=":
            raise LogfmtError(f"key {key!r} without '=' at column {i}: {line!r}")
        i += 1
        if i < n and line[i] == '"':
            end = i + 1
            while True:
                if end >= n:
                    raise LogfmtError(f"unterminated quoted value for {key!r}: {line!r}")
                if line[end] == "\\":
                    end += 2
                    continue
                if line[end] == '"':
                    break
                if not line[end].isprintable() and line[end] != " ":
                    raise LogfmtError(f"raw control character in quoted value for {key!r}: {line!r}")
                end += 1
            try:
                value = json.loads(line[i:end + 1])
            except json.JSONDecodeError as e:
                raise LogfmtError(f"bad escape in value for {key!r}: {e}: {line!r}") from None
            i = end + 1
        else:
            start = i
            while i < n and _bare_char(line[i]):
                i += 1
            value = line[start:i]
            if not value:
                raise LogfmtError(f"empty bare value for {key!r} (must be \"\"): {line!r}")
        if any(k == key for k, _ in pairs):
            raise LogfmtError(f"key {key!r} twice: {line!r}")
        pairs.append((key, value))
        if i == n:
            return pairs
        if line[i] != " " or i + 1 >= n or line[i + 1] == " ":
            raise LogfmtError(f"expected one space between pairs at column {i}: {line!r}")
        i += 1


def check_promslog(record: dict | list[tuple[str, str]]) -> dict:
    """The promslog shape: time, level, source, msg first; returns the record as a dict.
    A dict is a JSON line, a list of pairs a logfmt line."""
    json_line = isinstance(record, dict)
    items = list(record.items()) if json_line else record
    keys = [k for k, _ in items[:4]]
    if keys != HEAD:
        raise LogfmtError(f"first keys are {keys}, want {HEAD}")
    out = dict(items)
    if not (JSON_TIME if json_line else TIME).fullmatch(str(out["time"])):
        raise LogfmtError(f"time {out['time']!r} is not slog's RFC 3339 {'(nano)' if json_line else 'with milliseconds'}")
    if out["level"] not in LEVELS:
        raise LogfmtError(f"level {out['level']!r} is not one of {LEVELS}")
    if not SOURCE.fullmatch(str(out["source"])):
        raise LogfmtError(f"source {out['source']!r} is not file.py:line")
    if not isinstance(out["msg"], str):
        raise LogfmtError("msg is not a string")
    return out
