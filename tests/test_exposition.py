"""The Prometheus page: one collection per response, whatever the concurrency."""

import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from otel_bare_metal.exposition.http import parse_listen_address
from otel_bare_metal.exposition.prometheus import PrometheusPage
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.metrics import Observation

import pytest


def series(body: bytes):
    return [(s.name, tuple(sorted(s.labels.items()))) for f in text_string_to_metric_families(body.decode()) for s in f.samples]


def test_concurrent_renders_never_tear():
    """Widen the race on purpose: the reader pauses after queueing its collection, which is
    exactly when an unserialised second scrape would queue another into the same response."""
    page = PrometheusPage()
    original = page.reader._receive_metrics

    def slow_receive(*args, **kwargs):
        original(*args, **kwargs)
        time.sleep(0.05)

    page.reader._receive_metrics = slow_receive
    provider = MeterProvider(metric_readers=[page.reader])
    meter = provider.get_meter("t")
    meter.create_observable_gauge("g", callbacks=[lambda o: [Observation(i, {"i": i}) for i in range(10)]], description="d")
    results = []

    def render():
        results.append(series(page.render()[0]))

    threads = [threading.Thread(target=render) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    provider.shutdown()
    assert len(results) == 8
    for r in results:
        gauge = [k for k in r if k[0] == "g"]
        assert len(gauge) == 10 and len(set(gauge)) == 10


@pytest.mark.parametrize(
    "text,expected",
    [(":9464", ("", 9464)), ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:9464", ("::1", 9464)), ("localhost:0", ("localhost", 0))],
)
def test_listen_addresses(text, expected):
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["9464", "host:", "host:http", ":70000", ""])
def test_bad_listen_addresses(text):
    with pytest.raises(ValueError, match="listen address"):
        parse_listen_address(text)
