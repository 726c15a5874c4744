"""The Prometheus page: one collection per response, whatever the concurrency."""

import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from otel_bare_metal.address import parse_listen_address
from otel_bare_metal.collectors.cpu.metrics import METRICS as CPU_METRICS
from otel_bare_metal.collectors.filesystem.metrics import METRICS as FS_METRICS
from otel_bare_metal.exposition.prometheus import PrometheusPage, prometheus_renames
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
    address = parse_listen_address(text)
    assert (address.host, address.port) == expected and address == text


@pytest.mark.parametrize("text", ["9464", "host:", "host:http", ":70000", ""])
def test_bad_listen_addresses(text):
    with pytest.raises(ValueError, match="listen address"):
        parse_listen_address(text)


OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _pages_on(collectors_factory, naming="otel", accept="text/plain"):
    """The same collection rendered by the fast text encoder and by the stock reader path."""
    from otel_bare_metal.telemetry import instrument
    from otel_bare_metal.telemetry.resource import build_resource

    out = []
    for fast in (True, False):
        page = PrometheusPage()
        if not fast:
            page._fast = None
        provider = MeterProvider(resource=build_resource({"OTEL_RESOURCE_ATTRIBUTES": "a.b=1,quote=\"x\""}), metric_readers=[page.reader])
        instrument(provider.get_meter("t"), collectors_factory(), naming=naming)
        page.reader.renames.update(prometheus_renames(CPU_METRICS + FS_METRICS))  # as the app does: `_ratio`, overrides
        bodies = [page.render(accept)[0] for _ in range(2)]  # the second render uses the caches
        provider.shutdown()
        out.append(bodies)
    return out


@pytest.mark.parametrize("accept", ["text/plain", OPENMETRICS])
@pytest.mark.parametrize("naming", ["otel", "classic"])
def test_fast_text_encoder_is_byte_identical_to_the_stock_path(naming, accept):
    from helpers import FIXTURES
    from otel_bare_metal.collectors.cpu.source import ProcfsCPUSource
    from otel_bare_metal.collectors.filesystem.source import FilesystemSource, StatfsResult, StatfsWatchdog
    from otel_bare_metal.procfs import parse_mountinfo
    from otel_bare_metal.telemetry import SourceWorker

    table = parse_mountinfo(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "2 1 8:2 / /mnt/odd\\134\\042q\\012nl ro - xfs /dev/x\\377 rw\n"
    )

    def collectors():
        fs = FilesystemSource(watchdog=StatfsWatchdog(statfs=lambda p: StatfsResult(4096, 10**12, 3, 2, 10**7, 1), timeout=1),
                              read_mounts=lambda _: table)
        return [SourceWorker("cpu", ProcfsCPUSource(str(FIXTURES / "proc"), hz=100)), SourceWorker("filesystem", fs)]

    (fast1, fast2), (stock1, stock2) = _pages_on(collectors, naming, accept)
    strip = lambda b: b"\n".join(x for x in b.split(b"\n") if b"duration_seconds{" not in x)  # noqa: E731 timings differ
    assert strip(fast1) == strip(stock1)
    assert strip(fast2) == strip(stock2)
    assert b"system_cpu_time_seconds_total" in fast1 or b"node_cpu_seconds_total" in fast1
    if naming == "otel":
        assert b"system_filesystem_utilization_ratio{" in fast1, "the renames apply on the fast path too"


@pytest.mark.parametrize("accept", ["text/plain", OPENMETRICS])
def test_fast_text_encoder_backfills_mixed_label_sets_like_the_stock_path(accept):
    page_bodies = []
    for fast in (True, False):
        page = PrometheusPage()
        if not fast:
            page._fast = None
        provider = MeterProvider(metric_readers=[page.reader])
        meter = provider.get_meter("t")
        meter.create_observable_gauge("mixed", callbacks=[lambda o: [Observation(1, {"a": "x"}), Observation(2, {"b": 3}), Observation(3.5),
                                                                     Observation(4, {"a": -7, "b": 10**20}), Observation(5, {"b": 2.5})]],
                                      description="mixed\nlabel sets")
        meter.create_observable_counter("c.total", unit="By", callbacks=[lambda o: [Observation(7, {"k": True})]], description="d")
        page_bodies.append(page.render(accept)[0])
        provider.shutdown()
    fast, stock = page_bodies
    fast_lines = [x for x in fast.split(b"\n") if not x.startswith(b"target_info")]
    stock_lines = [x for x in stock.split(b"\n") if not x.startswith(b"target_info")]
    assert fast_lines == stock_lines
    assert b'mixed{a="x",b=""} 1.0' in fast
    assert b'mixed{a="-7",b="100000000000000000000"} 4.0' in fast and b'c_bytes_total{k="true"} 7.0' in fast


def _page_with_slow_instrument():
    """A page over two instruments; the first one's callback outlives the SDK's collect budget
    while ``slow`` is set, so the real SDK raises MetricsTimeoutError from collect."""
    page = PrometheusPage()
    provider = MeterProvider(metric_readers=[page.reader])
    meter = provider.get_meter("t")
    slow = threading.Event()

    def first(options):
        if slow.is_set():
            time.sleep(1.4)  # render gives the SDK its budget + 1 s
        return [Observation(1, {"i": 0})]

    meter.create_observable_gauge("a", callbacks=[first], description="d")
    meter.create_observable_gauge("b", callbacks=[lambda o: [Observation(2, {"i": 1})]], description="d")
    return page, provider, slow


def test_a_failed_sdk_collection_serves_the_last_complete_page():
    page, provider, slow = _page_with_slow_instrument()
    try:
        good, content_type = page.render(deadline=time.monotonic() + 5.0)
        assert ("b", (("i", "1"),)) in series(good)
        slow.set()
        again, again_type = page.render(deadline=time.monotonic() + 0.05)
        assert (again, again_type) == (good, content_type)
        assert page.served_last == 1
    finally:
        provider.shutdown()


def test_a_failed_first_collection_is_page_unavailable_not_a_crash():
    from otel_bare_metal.exposition.prometheus import PageUnavailable

    page, provider, slow = _page_with_slow_instrument()
    slow.set()
    try:
        with pytest.raises(PageUnavailable, match="MetricsTimeoutError"):
            page.render(deadline=time.monotonic() + 0.05)
        slow.clear()
        body, _ = page.render(deadline=time.monotonic() + 5.0)  # the page recovers on the next collection
        assert ("a", (("i", "0"),)) in series(body)
    finally:
        provider.shutdown()


def test_fast_encoder_remembers_values_but_never_mixes_zero_and_minus_zero():
    """Values are remembered from one encoding to the next (most repeat); each text must still be
    the one prometheus_client gives that very value."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client.utils import floatToGoString

    from otel_bare_metal.exposition.prometheus import TextEncoder

    rounds = [[0.0, 1.5, 1e21], [-0.0, 1.5, 2e21], [0.0, -0.0, 1e21]]
    current: list[float] = []
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("t").create_observable_gauge(
        "g", callbacks=[lambda options: [Observation(v, {"i": i}) for i, v in enumerate(current)]])
    encoder = TextEncoder(target_info=False)
    try:
        for values in rounds:
            current[:] = values
            body = encoder.encode(reader.get_metrics_data()).decode()
            assert [line.rsplit(" ", 1)[1] for line in body.splitlines() if line.startswith("g{")] == \
                [floatToGoString(v) for v in values]
    finally:
        provider.shutdown()
