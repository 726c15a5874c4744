"""``# UNIT`` on the OpenMetrics page: written so that a scraper which reads it (the Collector's
``prometheus`` receiver with its default scrape protocols) and a Prometheus OTLP translation after
it give back the very names the page has.  The real Collector runs this round trip in
tests/collector_config/test_collector_real.py; here the page itself, on both encoders.
"""

from __future__ import annotations

import re

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from otel_bare_metal.exposition.prometheus import PrometheusPage, openmetrics_unit
from helpers import builtin_metrics

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# what the Collector's prometheus receiver does with a UNIT (pkg/translator/prometheus
# UnitWordToUCUM) and what otlptranslator then appends: whole underscore-separated tokens of the
# name are compared with the unit's main part and with its "per_…" part.
WORD_TO_UCUM = {"seconds": "s", "bytes": "By", "ratio": "1", "second": "s"}
UCUM_TO_WORD = {"s": "seconds", "By": "bytes"}


def round_trip(name: str, unit: str) -> str:
    """The name a Collector's Prometheus exporter gives a family scraped with this UNIT: the
    receiver turns ``bytes_per_second`` into ``By/s``; the translator appends ``bytes`` unless it
    is a token of the name, then ``per_second`` unless *that* is one token (it never is)."""
    if not unit:
        return name
    main, sep, per = unit.partition("_per_")
    ucum = WORD_TO_UCUM.get(main, main) + (f"/{WORD_TO_UCUM.get(per, per)}" if sep else "")
    main_ucum, _, per_ucum = ucum.partition("/")
    suffixes = [UCUM_TO_WORD.get(main_ucum, main_ucum)]
    if per_ucum:
        suffixes.append("per_" + {"s": "second"}.get(per_ucum, per_ucum))
    tokens = name.split("_")
    for suffix in suffixes:
        if suffix not in tokens:
            tokens.append(suffix)
    return "_".join(tokens)


def _page_bodies(accept: str) -> dict[str, bytes]:
    """The page from the fast encoder and from the stock encoders (scope labels on)."""
    bodies = {}
    for path, scope_labels in (("fast", False), ("stock", True)):
        page = PrometheusPage(scope_labels=scope_labels)
        provider = MeterProvider(metric_readers=[page.reader])
        meter = provider.get_meter("otel_bare_metal")
        meter.create_observable_gauge("hdhomerun.tuner.raw_rate", unit="By/s", description="rate",
                                      callbacks=[lambda o: [Observation(1000.0, {"hdhomerun.tuner": "0"})]])
        meter.create_observable_gauge("hdhomerun.tuner.network_packet_rate", unit="{packet}/s", description="pps",
                                      callbacks=[lambda o: [Observation(5.0, {"hdhomerun.tuner": "0"})]])
        meter.create_observable_counter("system.cpu.time", unit="s", description="cpu",
                                        callbacks=[lambda o: [Observation(3.0, {"cpu.mode": "idle"})]])
        meter.create_observable_up_down_counter("system.filesystem.usage", unit="By", description="fs",
                                                callbacks=[lambda o: [Observation(9.0, {"state": "free"})]])
        bodies[path] = page.render(accept)[0]
        provider.shutdown()
    return bodies


@pytest.mark.parametrize("path", ["fast", "stock"])
def test_rates_carry_no_unit_line_and_single_words_keep_theirs(path):
    body = _page_bodies(OPENMETRICS)[path].decode()
    units = dict(re.findall(r"^# UNIT (\S+) (\S+)$", body, re.M))
    assert units == {"system_cpu_time_seconds": "seconds", "system_filesystem_usage_bytes": "bytes"}, units
    families = {f.name: f for f in parse_openmetrics(body)}  # still valid OpenMetrics
    assert families["hdhomerun_tuner_raw_rate_bytes_per_second"].unit == ""
    assert families["hdhomerun_tuner_network_packet_rate_per_second"].unit == ""
    assert families["system_cpu_time_seconds"].unit == "seconds"


def test_both_encoders_write_the_same_unit_lines():
    bodies = _page_bodies(OPENMETRICS)
    heads = {path: [line for line in body.split(b"\n") if line.startswith(b"# ")] for path, body in bodies.items()}
    assert heads["fast"] == heads["stock"]


def test_every_family_round_trips_through_a_unit_reading_scraper():
    """For every metric we define: the family name a scraper derives from our UNIT line is the
    name on the page (no ..._per_second_per_second)."""
    from otel_bare_metal._otel_compat import map_unit

    for m in builtin_metrics():
        family = m.prometheus_name.removesuffix("_total") if m.kind.value == "counter" else m.prometheus_name
        unit = openmetrics_unit(map_unit(m.unit))
        assert round_trip(family, unit) == family, (m.name, unit)


def test_the_round_trip_model_reproduces_the_bug_it_guards_against():
    assert round_trip("hdhomerun_tuner_raw_rate_bytes_per_second", "bytes_per_second") == \
        "hdhomerun_tuner_raw_rate_bytes_per_second_per_second"
    assert round_trip("hdhomerun_tuner_network_packet_rate_per_second", "per_second") == \
        "hdhomerun_tuner_network_packet_rate_per_second_per_second"
