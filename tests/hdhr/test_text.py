"""The parser of the devices' /tunerN/debug text: every sample of the protocol doc (§5) exactly,
table-driven bad inputs, and random text that may only parse or raise ParseError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_bare_metal.hdhr.text import (
    CounterSection,
    FilterSection,
    NetworkSection,
    ParseError,
    TransportSection,
    TunerDebug,
    TunerSection,
    parse_int,
    parse_tuner_debug,
)

# The four /tunerN/debug samples of the protocol doc, verbatim.
NEWER_LOCKED = """tun: ch=8vsb:575000000 lock=8vsb:575000000 ss=100 snq=98 seq=100 dbg=-2875/9836
dev: bps=19466272 resync=0 overflow=0
ts:  bps=9366912 te=0 crc=0
net: bps=9367360 pps=802 err=0 stop=0
"""
IDLE = """tun: ch=none lock=none ss=0 snq=0 seq=0 dbg=0
dev: bps=0 resync=0 overflow=0
ts:  bps=0 te=0 crc=0
net: bps=0 pps=0 err=0 stop=4
"""
OLDER_QAM = """tun: ch=qam:33 lock=qam256 ss=84 snq=88 seq=100 dbg=22081-6930
dev: resync=0 overflow=0
ts:  bps=38809216 ut=94 te=0 miss=0 crc=0
flt: bps=38809216
net: pps=0 err=0 stop=0
"""
CABLECARD = """tun: ch=qam:249000000 lock=qam256:249000000 ss=100 snq=100 seq=100 dbg=-383/-6666
dev: bps=38810720 resync=0 overflow=0
cc:  bps=38810720 resync=0 overflow=0
ts:  bps=12514784 te=0 crc=0
net: pps=1192 err=0 stop=0
"""

DEBUG_SAMPLES = [
    (
        NEWER_LOCKED,
        TunerDebug(
            tun=TunerSection("8vsb:575000000", "8vsb:575000000", 100, 98, 100, "-2875/9836"),
            dev=CounterSection(19466272, 0, 0),
            ts=TransportSection(9366912, 0, 0),
            net=NetworkSection(9367360, 802, 0, 0),
        ),
    ),
    (
        IDLE,
        TunerDebug(
            tun=TunerSection(None, None, 0, 0, 0, "0"),
            dev=CounterSection(0, 0, 0),
            ts=TransportSection(0, 0, 0),
            net=NetworkSection(0, 0, 0, 4),
        ),
    ),
    (
        OLDER_QAM,
        TunerDebug(
            tun=TunerSection("qam:33", "qam256", 84, 88, 100, "22081-6930"),
            dev=CounterSection(None, 0, 0),
            ts=TransportSection(38809216, 0, 0, ut=94, miss=0),
            flt=FilterSection(38809216),
            net=NetworkSection(None, 0, 0, 0),
        ),
    ),
    (
        CABLECARD,
        TunerDebug(
            tun=TunerSection("qam:249000000", "qam256:249000000", 100, 100, 100, "-383/-6666"),
            dev=CounterSection(38810720, 0, 0),
            cc=CounterSection(38810720, 0, 0),
            ts=TransportSection(12514784, 0, 0),
            net=NetworkSection(None, 1192, 0, 0),
        ),
    ),
]


@pytest.mark.parametrize("text,expected", DEBUG_SAMPLES, ids=["newer", "idle", "older-qam", "cablecard"])
def test_debug_samples(text: str, expected: TunerDebug) -> None:
    result = parse_tuner_debug(text)
    assert result == expected
    assert dict(result.extra) == {}


def test_debug_sections_absent_are_none() -> None:
    d = parse_tuner_debug(NEWER_LOCKED)
    assert d.cc is None and d.flt is None
    assert parse_tuner_debug(OLDER_QAM).cc is None


def test_debug_lock_helpers() -> None:
    assert parse_tuner_debug(NEWER_LOCKED).tun.locked  # type: ignore[union-attr]
    assert parse_tuner_debug(NEWER_LOCKED).tun.modulation == "8vsb"  # type: ignore[union-attr]
    assert not parse_tuner_debug(IDLE).tun.locked  # type: ignore[union-attr]
    ntsc = parse_tuner_debug("tun: ch=auto:6 lock=(ntsc) ss=70 snq=0 seq=0\n")
    assert ntsc.tun is not None and ntsc.tun.lock == "(ntsc)" and not ntsc.tun.locked


def test_debug_unit_suffixes() -> None:
    d = parse_tuner_debug("tun: ch=qam:33 lock=qam256 ss=83(-10dBmV) snq=90(29dB) seq=100\n")
    assert d.tun == TunerSection("qam:33", "qam256", 83, 90, 100, None)


def test_debug_unknown_prefixes_and_keys_tolerated() -> None:
    text = NEWER_LOCKED + "xyz: a=1 b=two\n" + "ts2: q=5\n"
    d = parse_tuner_debug(text.replace("ts:  bps=9366912", "ts:  bps=9366912 newkey=7"))
    assert d.ts == TransportSection(9366912, 0, 0)
    assert {k: dict(v) for k, v in d.extra.items()} == {"xyz": {"a": "1", "b": "two"}, "ts2": {"q": "5"}}


def test_debug_none_values_and_crlf() -> None:
    d = parse_tuner_debug("tun: ch=none lock=none ss=none\r\nnet: pps=none stop=none\r\n")
    assert d.tun == TunerSection(None, None, None, None, None, None)
    assert d.net == NetworkSection(None, None, None, None)


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "no debug lines"),
        ("\n \n", "no debug lines"),
        ("tun ch=none", "prefix"),
        ("ch=none lock=none", "prefix"),
        ("tun: ch=none lock", "key=value"),
        ("tun: =5", "key=value"),
        ("tun: ss=abc", "ss='abc' is not an integer"),
        ("tun: ss=12x", "not an integer"),
        ("tun: ss=", "not an integer"),
        ("dev: bps=1.5", "not an integer"),
        ("net: stop=0x1", "not an integer"),
        ("ts: te=" + "9" * 100, "not plausible"),
        ("tun: ss=1 ss=2", "repeated"),
        ("tun: ss=1\ntun: ss=2", "repeated"),
        ("my tag: a=1", "prefix"),
        ("tun:", "no key=value"),
        ("tun: ch=none\nts:", "no key=value"),
    ],
)
def test_debug_bad_inputs(text: str, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        parse_tuner_debug(text)


def test_parse_error_is_value_error_and_quotes_line() -> None:
    with pytest.raises(ValueError) as info:
        parse_tuner_debug("dev: bps=12 resync=oops")
    assert "dev: bps=12 resync=oops" in str(info.value)


@pytest.mark.parametrize(
    "value,expected",
    [("0", 0), ("-5", -5), ("+7", 7), ("007", 7), ("1" * 40, int("1" * 40)), ("83(-10dBmV)", 83), ("90(29dB)", 90),
     ("none", None)],
)
def test_parse_int(value: str, expected: int | None) -> None:
    assert parse_int(value) == expected


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662", "1" * 41, "1 2", "", "12(", "0x10"])
def test_parse_int_refuses_what_is_not_a_plain_integer(value: str) -> None:
    """Digits other than ASCII ones (``str.isdigit`` accepts them, ``int`` does not all), and
    implausibly long numbers, are refused like any other malformed value."""
    with pytest.raises(ParseError):
        parse_int(value)


# -- random text -------------------------------------------------------------------------------

PARSER_EXAMPLES = 300
# Text biased towards the formats' own alphabet, so inputs get past the first checks.
alphabet = st.sampled_from(list("tundevcsnqmpbrlkfo:= ()\n-0123456789x.") + ["\r", "\t", "é", "\x00"])
text_strategy = st.one_of(st.text(max_size=120), st.text(alphabet, max_size=120))


@settings(max_examples=PARSER_EXAMPLES, deadline=None)
@given(text_strategy)
def test_random_text_only_result_or_parse_error(text: str) -> None:
    try:
        result = parse_tuner_debug(text)
    except ParseError:
        return
    assert isinstance(result, TunerDebug)
