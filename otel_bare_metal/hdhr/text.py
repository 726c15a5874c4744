"""Parsers for the text values an HDHomeRun returns that the exporter reads: ``/tunerN/debug``.

Parsers take a string (the value already fetched) and return frozen dataclasses, so they
are tested from literal samples without any device.  Every malformed input raises
:class:`ParseError` (a :class:`ValueError`), never anything else; the message quotes the
offending line.

Tolerance rules (firmware differs between models and years):

* lines are ``prefix:`` followed by whitespace-separated ``key=value`` tokens; padding
  (``ts:  bps=...``) does not matter;
* unknown prefixes (``flt:`` from older firmware is kept, anything else is collected in
  ``extra``) and unknown keys (``ut=``, ``miss=``…) are accepted;
* a key the firmware did not send is ``None``; a whole line it did not send is ``None``;
* integers may carry a unit suffix in parentheses, ``ss=83(-10dBmV)`` -> 83;
* the literal ``none`` means "not in use" -> ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from .packet import HDHomeRunError

__all__ = [
    "ParseError",
    "TunerSection",
    "CounterSection",
    "TransportSection",
    "FilterSection",
    "NetworkSection",
    "TunerDebug",
    "parse_tuner_debug",
    "parse_int",
]


class ParseError(HDHomeRunError, ValueError):
    """A device's text value does not have the expected shape."""


# A leading (optionally signed) integer, optionally followed by a unit in parentheses.
_INT_RE = re.compile(r"([+-]?[0-9]+)(\([^()]*\))?")
# Python refuses int() of more than 4300 digits; no device value comes near that.
_MAX_DIGITS = 40


def _to_int(digits: str, what: str) -> int:
    if len(digits) > _MAX_DIGITS:
        raise ParseError(f"{what}: number with {len(digits)} digits is not plausible")
    return int(digits)


def parse_int(value: str, *, key: str = "value", line: str | None = None) -> int | None:
    """An integer field: ``none`` -> None, ``83`` -> 83, ``83(-10dBmV)`` -> 83."""
    if value == "none":
        return None
    if value.isdigit() and value.isascii() and len(value) <= _MAX_DIGITS:  # the common case, without the regex
        return int(value)
    m = _INT_RE.fullmatch(value)
    if m is None:
        where = f" in line {line!r}" if line is not None else ""
        raise ParseError(f"{key}={value!r} is not an integer{where}")
    return _to_int(m.group(1), f"{key} in line {line!r}" if line is not None else key)


def _text(value: str) -> str | None:
    return None if value == "none" else value


def _parse_pairs(tokens: list[str], line: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise ParseError(f"expected key=value, got {token!r} in line {line!r}")
        if key in pairs:
            raise ParseError(f"key {key!r} repeated in line {line!r}")
        pairs[key] = value
    return pairs


def _ints(pairs: Mapping[str, str], keys: tuple[str, ...], line: str) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for k in keys:
        value = pairs.get(k)
        if value is None:
            out[k] = None
        elif value.isdigit() and value.isascii() and len(value) <= _MAX_DIGITS:  # parse_int's common case, inline
            out[k] = int(value)
        else:
            out[k] = parse_int(value, key=k, line=line)
    return out


@dataclass(frozen=True)
class TunerSection:
    """The ``tun:`` line: what the tuner was asked for and what it locked onto.

    ``channel`` is e.g. ``8vsb:575000000``, ``auto:33``, ``qam:381000000`` or ``None``
    (idle).  ``lock`` is the modulation locked (``8vsb``, ``qam256``, newer firmware
    ``8vsb:575000000``), ``None`` when not locked; a value in parentheses such as
    ``(ntsc)`` means a signal is seen but cannot be decoded.  ``signal_strength``,
    ``snr_quality`` and ``symbol_quality`` are percentages.
    """

    channel: str | None
    lock: str | None
    signal_strength: int | None
    snr_quality: int | None
    symbol_quality: int | None
    dbg: str | None

    @property
    def locked(self) -> bool:
        """True when the tuner has a decodable lock (not ``none`` and not ``(ntsc)``-style)."""
        return self.lock is not None and not self.lock.startswith("(")

    @property
    def modulation(self) -> str | None:
        """The lock without the frequency: ``8vsb:575000000`` -> ``8vsb``."""
        if self.lock is None:
            return None
        return self.lock.partition(":")[0]


@dataclass(frozen=True)
class CounterSection:
    """A ``dev:`` or ``cc:`` line: raw bits/s and the resync and overflow counters."""

    bps: int | None
    resync: int | None
    overflow: int | None


@dataclass(frozen=True)
class TransportSection:
    """The ``ts:`` line: transport-stream bits/s, transport errors (``te``), CRC errors,
    and on older firmware utilisation percent (``ut``) and ``miss``."""

    bps: int | None
    te: int | None
    crc: int | None
    ut: int | None = None
    miss: int | None = None


@dataclass(frozen=True)
class FilterSection:
    """The ``flt:`` line of older firmware: bits/s after PID filtering."""

    bps: int | None


@dataclass(frozen=True)
class NetworkSection:
    """The ``net:`` line: bits/s (newer firmware), packets/s sent, packets dropped
    (``err``) and ``stop``, why the stream stopped (0 running, 1 intentional, 2 ICMP
    reject, 3 connection loss, 4 HTTP closed; other values exist)."""

    bps: int | None
    pps: int | None
    err: int | None
    stop: int | None


@dataclass(frozen=True)
class TunerDebug:
    """``/tunerN/debug``: one optional section per line the firmware sent.

    ``extra`` maps any unknown prefix to its raw ``key=value`` pairs.
    """

    tun: TunerSection | None = None
    dev: CounterSection | None = None
    cc: CounterSection | None = None
    ts: TransportSection | None = None
    flt: FilterSection | None = None
    net: NetworkSection | None = None
    extra: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))


_SECTIONS = ("tun", "dev", "cc", "ts", "flt", "net")


def _split_line(line: str) -> tuple[str, list[str]]:
    prefix, sep, rest = line.partition(":")
    prefix = prefix.strip()
    if not sep or not prefix or (not prefix.isalnum() and any(c.isspace() for c in prefix)) or "=" in prefix:
        raise ParseError(f"expected 'prefix: key=value ...', got {line!r}")
    return prefix, rest.split()


def parse_tuner_debug(text: str) -> TunerDebug:
    """Parse a ``/tunerN/debug`` value (see the module docstring for tolerance rules)."""
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}")
    sections: dict[str, object] = {}
    extra: dict[str, Mapping[str, str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        prefix, tokens = _split_line(line)
        if prefix in sections or prefix in extra:
            raise ParseError(f"line {prefix!r} repeated: {line!r}")
        pairs = _parse_pairs(tokens, line)
        if not pairs and prefix in _SECTIONS:
            raise ParseError(f"line {prefix!r} has no key=value fields: {line!r}")
        if prefix == "tun":
            ints = _ints(pairs, ("ss", "snq", "seq"), line)
            sections[prefix] = TunerSection(
                channel=_text(pairs["ch"]) if "ch" in pairs else None,
                lock=_text(pairs["lock"]) if "lock" in pairs else None,
                signal_strength=ints["ss"],
                snr_quality=ints["snq"],
                symbol_quality=ints["seq"],
                dbg=pairs.get("dbg"),
            )
        elif prefix in ("dev", "cc"):
            sections[prefix] = CounterSection(**_ints(pairs, ("bps", "resync", "overflow"), line))
        elif prefix == "ts":
            sections[prefix] = TransportSection(
                **_ints(pairs, ("bps", "te", "crc", "ut", "miss"), line)
            )
        elif prefix == "flt":
            sections[prefix] = FilterSection(**_ints(pairs, ("bps",), line))
        elif prefix == "net":
            sections[prefix] = NetworkSection(**_ints(pairs, ("bps", "pps", "err", "stop"), line))
        else:
            extra[prefix] = MappingProxyType(dict(pairs))
    if not sections and not extra:
        raise ParseError(f"no debug lines in {text!r}")
    return TunerDebug(extra=MappingProxyType(extra), **sections)  # type: ignore[arg-type]  # keys are TunerDebug's section names, each its own record type
