"""Concurrent collection under one deadline: a hung source costs the page its own series only.

Hung sources are injected blocking functions (an Event the test releases at the end); every
wait in these tests is bounded, and the assertions are about what the page holds, not how
fast it came.
"""

import threading
import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from helpers import fetch, samples
from otel_bare_metal.app import App
from otel_bare_metal.config import Config
from otel_bare_metal.exposition.prometheus import PrometheusPage
from otel_bare_metal.collectors.filesystem.source import FilesystemStat
from otel_bare_metal.procfs import CPUStat, CPUTimes
from otel_bare_metal.telemetry import Collection, SourceWorker, instrument
from otel_bare_metal.telemetry.collection import INLINE_AFTER, INLINE_BELOW
from otel_bare_metal.telemetry.resource import build_resource


class Blocking:
    """A source whose read blocks until released (a FIFO, a dead NFS server…)."""

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.reads = 0

    def read(self):
        self.reads += 1
        self.entered.set()
        assert self.release.wait(30), "test never released the blocking source"
        return FilesystemStat(filesystems=[])


class Quick:
    def __init__(self):
        self.reads = 0

    def read(self):
        self.reads += 1
        return CPUStat(cpus=[CPUTimes(cpu=0, modes={"user": 1.0, "idle": 2.0})])


@pytest.fixture
def blocking():
    source = Blocking()
    yield source
    source.release.set()


def success(values):
    return {dict(labels)["collector"]: v for (name, labels), v in values.items() if name.endswith("collector_success")}


def page_for(collectors, naming="otel"):
    page = PrometheusPage()
    provider = MeterProvider(metric_readers=[page.reader])
    page.collection = instrument(provider.get_meter("t"), collectors, naming=naming)
    return page, provider


def test_a_hung_source_times_out_alone_and_the_rest_is_complete(blocking):
    quick = Quick()
    page, provider = page_for([SourceWorker("filesystem", blocking), SourceWorker("cpu", quick)])
    body, _ = page.render(deadline=time.monotonic() + 0.5)
    values = samples(body.decode())
    assert success(values) == {"filesystem": 0, "cpu": 1}
    cpu = {labels for (name, labels) in values if name == "system_cpu_time_seconds_total"}
    assert cpu == {(("cpu_logical_number", "0"), ("cpu_mode", "idle")), (("cpu_logical_number", "0"), ("cpu_mode", "user"))}
    provider.shutdown()


def test_a_stuck_read_is_joined_never_started_twice(blocking):
    quick = Quick()
    hung = SourceWorker("filesystem", blocking)
    page, provider = page_for([hung, SourceWorker("cpu", quick)])
    for _ in range(3):
        values = samples(page.render(deadline=time.monotonic() + 0.2)[0].decode())
        assert success(values) == {"filesystem": 0, "cpu": 1}
    assert blocking.reads == 1 and quick.reads == 3
    blocking.release.set()
    # Released, the stuck read ends; the next collection starts a fresh read.
    deadline = time.monotonic() + 10
    while hung.in_flight_for(time.monotonic()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert success(samples(page.render(deadline=time.monotonic() + 5)[0].decode())) == {"filesystem": 1, "cpu": 1}
    assert blocking.reads == 2
    provider.shutdown()


def test_a_collectors_own_bound_caps_the_wait(blocking):
    """A read older than its own timeout is not waited for at all, whatever the scrape allows."""
    collector = SourceWorker("filesystem", blocking, timeout=0.05)
    page, provider = page_for([collector, SourceWorker("cpu", Quick())])
    page.render(deadline=time.monotonic() + 0.5)
    durations = []
    for _ in range(2):
        started = time.monotonic()
        page.render(deadline=time.monotonic() + 30)
        durations.append(time.monotonic() - started)
    # A 30 s budget was available; the collector's own 0.05 s (+ grace) bound ended each wait.
    assert max(durations) < 10
    provider.shutdown()


def test_a_collection_without_a_scrape_deadline_yields_to_a_waiting_scrape(blocking):
    """An OTLP export (no header) waiting on a hung source holds the SDK lock; a scrape that
    queues behind it must still answer before its own deadline."""
    reader = InMemoryMetricReader()
    page = PrometheusPage()
    provider = MeterProvider(metric_readers=[reader, page.reader])
    page.collection = instrument(provider.get_meter("t"), [SourceWorker("filesystem", blocking), SourceWorker("cpu", Quick())])
    other = threading.Thread(target=reader.get_metrics_data)  # would wait ~10 s on the hung source
    other.start()
    assert blocking.entered.wait(10)
    started = time.monotonic()
    body, _ = page.render(deadline=time.monotonic() + 1.0)
    # Without yielding the scrape would sit behind the other collection for its full ~10 s.
    assert time.monotonic() - started < 5
    assert success(samples(body.decode())) == {"filesystem": 0, "cpu": 1}
    other.join(15)
    assert not other.is_alive()
    provider.shutdown()


def test_the_render_lock_is_bounded_and_serves_the_last_complete_page():
    page, provider = page_for([SourceWorker("cpu", Quick())])
    first, _ = page.render(deadline=time.monotonic() + 1)
    page._lock.acquire()  # a render (or collection) that will not let go in time
    try:
        body, content_type = page.render(deadline=time.monotonic() + 0.2)
        assert body == first and content_type.startswith("text/plain")
        assert page.served_last == 1
    finally:
        page._lock.release()
    provider.shutdown()


def test_healthz_is_503_while_a_read_is_stuck_and_metrics_still_answer(blocking):
    config = Config(listen_address="127.0.0.1:0", stuck_after=0.3)
    exporter = App(config, resource=build_resource({}),
                        collectors=[SourceWorker("filesystem", blocking), SourceWorker("cpu", Quick())]).start()
    base = f"http://127.0.0.1:{exporter.server.port}"
    try:
        assert fetch(base + "/healthz")[0] == 200
        # Without the header's deadline the collection would wait 10 s and this fetch time out.
        status, _, body = fetch(base + "/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "1"}, timeout=5)
        assert status == 200 and success(samples(body.decode())) == {"filesystem": 0, "cpu": 1}
        deadline = time.monotonic() + 10
        while fetch(base + "/healthz")[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, _, body = fetch(base + "/healthz")
        assert status == 503 and b"filesystem" in body
        blocking.release.set()
        deadline = time.monotonic() + 10
        while fetch(base + "/healthz")[0] == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fetch(base + "/healthz")[0] == 200
    finally:
        exporter.close()


def test_collection_stuck_names_long_reads(blocking):
    collection = Collection([SourceWorker("filesystem", blocking), SourceWorker("cpu", Quick())], stuck_after=0.0)
    collection.collect(time.monotonic() + 0.1)
    assert [name for name, _ in collection.stuck()] == ["filesystem"]


class Where:
    """A quick source that records the thread of each read; ``cost`` seconds pass on the
    worker's clock during a read (a fake clock: no sleeping)."""

    def __init__(self, clock=None, nonblocking=True, timeout=None):
        self.threads = []
        self.clock, self.cost = clock, 0.0
        self.nonblocking = nonblocking
        if timeout is not None:
            self.timeout = timeout

    def read(self):
        self.threads.append(threading.get_ident())
        if self.clock is not None:
            self.clock.now += self.cost
        return CPUStat(cpus=[CPUTimes(cpu=0, modes={"user": 1.0, "idle": 2.0})])


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def collect_times(collection, n, budget=5.0):
    for _ in range(n):
        collection.collect(collection._clock() + budget)


def test_a_source_whose_reads_were_fast_is_read_on_the_collecting_thread():
    source = Where()
    collection = Collection([SourceWorker("cpu", source)])
    collect_times(collection, INLINE_AFTER + 2)
    me = threading.get_ident()
    assert me not in source.threads[:INLINE_AFTER]  # it earns it on its worker first
    assert source.threads[INLINE_AFTER:] == [me, me]
    assert collection.workers[0].success


def test_a_source_turned_slow_goes_back_to_its_worker():
    clock = Clock()
    source = Where(clock)
    collection = Collection([SourceWorker("cpu", source, clock=clock)], clock=clock)
    collect_times(collection, INLINE_AFTER + 1)
    me = threading.get_ident()
    assert source.threads[-1] == me
    source.cost = INLINE_BELOW * 2  # this inline read is slow…
    collect_times(collection, 1)
    source.cost = 0.0
    collect_times(collection, INLINE_AFTER)  # …so the next ones run on the worker until fast again
    assert source.threads[-1 - INLINE_AFTER] == me
    assert me not in source.threads[-INLINE_AFTER:]
    collect_times(collection, 1)
    assert source.threads[-1] == me


def test_a_source_that_may_block_is_never_read_on_the_collecting_thread():
    source = Where(nonblocking=False)  # no bound of its own, not declared non-blocking
    collection = Collection([SourceWorker("cpu", source)])
    collect_times(collection, INLINE_AFTER + 3)
    assert threading.get_ident() not in source.threads


def test_a_source_whose_own_bound_outlasts_the_deadline_stays_on_its_worker():
    short, fits = Where(nonblocking=False, timeout=30.0), Where(nonblocking=False, timeout=0.5)
    collection = Collection([SourceWorker("filesystem", short), SourceWorker("cpu", fits)])
    collect_times(collection, INLINE_AFTER + 2, budget=5.0)
    me = threading.get_ident()
    assert me not in short.threads  # 30 s + GRACE cannot fit a 5 s deadline
    assert fits.threads[-2:] == [me, me]


def test_an_inline_read_is_in_flight_like_any_other():
    """While a read runs inline, another collection joins it instead of starting a second."""
    seen = []

    class Peeking(Where):
        def read(self):
            seen.append(worker.in_flight_for(time.monotonic() + 1) > 0)
            return super().read()

    source = Peeking()
    worker = SourceWorker("cpu", source)
    collection = Collection([worker])
    collect_times(collection, INLINE_AFTER + 1)
    assert source.threads[-1] == threading.get_ident()
    assert seen[-1] is True


class CountingLock:
    """The page's lock, counting the renders that asked for it."""

    def __init__(self):
        self.lock, self.asked = threading.Lock(), 0

    def acquire(self, blocking=True, timeout=-1):
        self.asked += 1
        return self.lock.acquire(blocking, timeout)

    def release(self):
        self.lock.release()


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert condition()


def test_scrapes_queued_behind_a_render_share_one_collection_made_after_they_arrived():
    quick = Quick()
    page, provider = page_for([SourceWorker("cpu", quick)])
    page.render(deadline=time.monotonic() + 5)  # a page made before the scrapes below arrive
    page._lock = CountingLock()
    page._lock.acquire()  # a render in progress
    bodies = []
    threads = [threading.Thread(target=lambda: bodies.append(page.render(deadline=time.monotonic() + 10)[0]))
               for _ in range(3)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: page._lock.asked >= 1 + 2 * 3)  # each asked without waiting, then waiting
        reads = quick.reads
    finally:
        page._lock.release()
    for t in threads:
        t.join(10)
    # One of the three collected; the two others were answered with that collection (it started
    # after they arrived), never with the page made before they arrived.
    assert quick.reads == reads + 1
    assert page.shared == 2 and page.served_last == 0
    assert len(bodies) == 3 and len(set(bodies)) == 1
    provider.shutdown()


def test_a_render_never_shares_a_collection_that_started_before_it_arrived():
    quick = Quick()
    page, provider = page_for([SourceWorker("cpu", quick)])
    page.render(deadline=time.monotonic() + 5)
    page._lock = CountingLock()
    page._lock.acquire()
    done = []
    t = threading.Thread(target=lambda: done.append(page.render(deadline=time.monotonic() + 10)))
    try:
        t.start()
        wait_for(lambda: page._lock.asked >= 2)
    finally:
        page._lock.release()  # the lock is free, but the last page is older than the request
    t.join(10)
    assert done and quick.reads == 2 and page.shared == 0
    provider.shutdown()


def test_at_most_one_source_that_may_block_is_read_inline_the_others_beside_it():
    a, b = Where(nonblocking=False, timeout=0.5), Where(nonblocking=False, timeout=0.5)
    cpu = Where()
    collection = Collection([SourceWorker("a", a), SourceWorker("b", b), SourceWorker("cpu", cpu)])
    collect_times(collection, INLINE_AFTER + 3)
    me = threading.get_ident()
    assert cpu.threads[-2:] == [me, me]  # non-blocking: always inline once earned
    # Each collection reads at most one of the bounded sources on the collecting thread.
    last = [(x == me) + (y == me) for x, y in zip(a.threads[-2:], b.threads[-2:])]
    assert last == [1, 1]
