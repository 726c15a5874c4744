"""Read every source once per collection, all at once, under one deadline.

The OpenTelemetry SDK calls every observable instrument's callbacks once per reader
collection, in the order the instruments were created, all on the collecting thread, one
collection at a time (its measurement consumer holds one lock for the whole provider).
``register`` makes the first instrument's callback run ``Collection.collect``:

* every collector's read starts at once, each on its collector's worker thread (one
  long-lived thread per collector, woken per read), except a source that has earned being
  read **inline**, on the collecting thread (see :meth:`SourceWorker.inline_for`): its last
  :data:`INLINE_AFTER` reads each took less than :data:`INLINE_BELOW`, and it cannot make the
  collection late (its own bound, plus :data:`GRACE`, ends before the deadline; or it takes
  the deadline itself; or it never blocks, ``nonblocking = True``: a kernel pseudo-file).  At
  most one source that may block is read inline per collection, so the others still read
  beside it.  On a small host that is every source, and a collection then needs no thread hand-off, no lock
  and no wait; a source that turns slow goes back to its worker at its next read;
* a collector has **at most one read in flight**: a read still running from an earlier
  collection (a stuck source) is joined, never started twice;
* the collecting thread waits until every read is done or the **deadline** passes, then
  snapshots the results into a slot of the collecting thread, which every instrument, that
  one included, then maps;
* an observer that raises (a plugin's bug, say) observes nothing and makes only its own
  collector's ``success`` 0 (``SourceWorker.bind``): ``telemetry.instrument`` creates the
  self-monitoring instruments last, so they see every failure of the collection;
* a collector whose read is not done by then reports ``success`` 0 and no series (its reason
  is logged, rate-limited); every other collector's series are complete.

The deadline of a collection is the earliest of:

* the scrape's own deadline, registered by the Prometheus page with :meth:`Collection.scrape`
  (from ``X-Prometheus-Scrape-Timeout-Seconds`` less ``--timeout-offset``);
* without one (an OTLP export, or any other reader), the time the SDK gives the callback
  (``CallbackOptions.timeout_millis``: the export timeout, at most 10 s);
* half of the budget left to a scrape that is queued behind this collection (the SDK lock is
  shared by every reader: an OTLP export waiting on a stuck source must not make a scrape
  miss its own deadline);

and, per collector, the collector's own bound (``timeout``: the mount timeout, the
HDHomeRun timeout) plus :data:`GRACE` after its read started.  So a stuck read costs a
scrape nothing once it has outlived its own bound.

:meth:`Collection.stuck` names reads that have been running longer than a bound, for
``/healthz``.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_bare_metal.deadline import DEFAULT_SCRAPE_TIMEOUT, GRACE, SDK_CALLBACK_SLACK, SOURCE_MARGIN
from otel_bare_metal.logutil import RateLimitedLog
from otel_bare_metal.telemetry.definitions import Classic, Kind, Metric, _frozen

log = logging.getLogger(__name__)

#: A read running longer than this makes ``/healthz`` answer 503.
STUCK_AFTER = 60.0
#: A source whose last ``INLINE_AFTER`` reads each took less than ``INLINE_BELOW`` seconds is
#: read on the collecting thread (when it cannot make the collection late, see
#: ``SourceWorker.inline_for``): waking a worker costs more than reading /proc/stat.  Reading
#: fast sources one after another costs at most ``len(sources) × INLINE_BELOW`` more than
#: reading them at once; the bound is wall time, so it is wide enough that a busy machine
#: preempting a 0.2 ms read does not send the source back to its worker.
INLINE_AFTER = 4
INLINE_BELOW = 0.05


class Source(Protocol):
    """What a collector's source factory returns: ``read()``, optionally ``read(deadline=...)``."""

    def read(self, *args: Any, **kwargs: Any) -> Any: ...


class _Read:
    """One read of one source, on its collector's worker thread."""

    __slots__ = ("started", "done", "result", "errors", "duration")

    def __init__(self, started: float):
        self.started = started
        self.done = threading.Event()
        self.result: Any = None
        self.errors: list[str] = []
        self.duration = 0.0


class SourceWorker:
    """One named source, read at most once at a time, on a worker thread.

    ``timeout`` is the longest the source's ``read`` takes by its own bound (by default the
    source's ``timeout`` attribute, if it has one); ``None``: only the collection's deadline
    bounds the wait.  A source whose ``read`` takes a ``deadline`` keyword (a
    ``time.monotonic()`` value) is told the collection's, a little early, so it can return
    what it has in time (the HDHomeRun fleet does).  A record with a non-empty ``errors`` list (lines a parser could not
    read) still exports what it has, but marks the collection unsuccessful.
    """

    def __init__(self, name: str, source: Source, clock: Callable[[], float] = time.monotonic,
                 timeout: float | None = None):
        self.name = name
        self.source = source
        self.timeout = timeout if timeout is not None else getattr(source, "timeout", None)
        try:
            self._takes_deadline = "deadline" in inspect.signature(source.read).parameters
        except (TypeError, ValueError):
            self._takes_deadline = False
        self._clock = clock
        self._local = threading.local()
        self._guard = threading.Lock()
        self._inflight: _Read | None = None
        self._job: tuple[_Read, float | None] | None = None
        self._wake = threading.Lock()  # released by start() to hand the worker its job
        self._wake.acquire()
        self._worker: threading.Thread | None = None  # started with the first read
        self._notify: Callable[[], None] = lambda: None
        self._fast = 0  # consecutive reads shorter than INLINE_BELOW
        self._nonblocking = bool(getattr(source, "nonblocking", False))
        self._warn = RateLimitedLog(log)
        self.attributes = {"collector": name}

    def bind(self, observers: dict[Metric, Observer]) -> dict[Metric, Observer]:
        """The same observers, each made safe: one that raises (a plugin's bug, say) observes
        nothing and makes this collection of this collector unsuccessful, nothing else."""
        return {metric: self._guarded(getattr(metric, "name", str(metric)), observe) for metric, observe in observers.items()}

    def _guarded(self, name: str, observe: Observer) -> Observer:
        local = self._local

        def guarded() -> Iterable[Observation]:
            try:
                return observe()
            except Exception as e:
                local.success = False
                self._warn(logging.WARNING, f"{self.name}:{name}", "observer failed", collector=self.name,
                           metric=name, err=f"{type(e).__name__}: {e}")
                return []

        return guarded

    # -- reading ------------------------------------------------------------------------

    def start(self, deadline: float | None = None) -> _Read:
        """The read in flight, or a new one started now (told ``deadline`` if it takes one)."""
        with self._guard:
            read = self._inflight
            if read is None or read.done.is_set():
                read = self._inflight = _Read(self._clock())
                self._hand_over(read, deadline)
            return read

    def inline_for(self, deadline: float, now: float, may_block: bool = True) -> _Read | None:
        """A new read, to run on the calling thread with :meth:`run_inline`, when this source
        has earned it and cannot make a collection ending at ``deadline`` late: its last
        :data:`INLINE_AFTER` reads were each shorter than :data:`INLINE_BELOW`, no read is in
        flight, and it never blocks (``nonblocking``), or (``may_block``) takes the deadline,
        or its own bound plus :data:`GRACE` ends before ``deadline``.  Else ``None``: use
        :meth:`start`."""
        if self._fast < INLINE_AFTER:
            return None
        if not self._nonblocking and not may_block:
            return None
        if not (self._nonblocking or self._takes_deadline or
                (self.timeout is not None and now + self.timeout + GRACE <= deadline)):
            return None
        with self._guard:
            read = self._inflight
            if read is not None and not read.done.is_set():
                return None
            read = self._inflight = _Read(now)  # in flight like any read: joined, never restarted
            return read

    def run_inline(self, read: _Read, deadline: float | None) -> None:
        self._run(read, None if deadline is None else deadline - SOURCE_MARGIN, notify=False)

    def hand_over(self, read: _Read, deadline: float | None) -> None:
        """Give ``read``, taken by :meth:`inline_for` but not run, to the worker after all."""
        with self._guard:
            self._hand_over(read, deadline)

    def _hand_over(self, read: _Read, deadline: float | None) -> None:
        self._job = (read, None if deadline is None else deadline - SOURCE_MARGIN)
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name=f"collect-{self.name}", daemon=True)
            self._worker.start()
        self._wake.release()  # held except between a start and the worker taking its job

    def _work(self) -> None:
        """The collector's one worker thread: one read per wake-up, for the process's life.
        (A thread per read cost more than reading /proc/stat; one thread per collector also
        keeps "at most one read in flight" true by construction.)"""
        while True:
            self._wake.acquire()
            job, self._job = self._job, None
            if job is None:  # close()
                return
            self._run(*job)

    def _run(self, read: _Read, deadline: float | None, notify: bool = True) -> None:
        try:
            result = self.source.read(deadline=deadline) if self._takes_deadline and deadline is not None else self.source.read()
            errors = [str(e) for e in (getattr(result, "errors", ()) or ())]
        except Exception as e:  # a source failing must never fail the scrape
            result, errors = None, [f"{type(e).__name__}: {e}"]
        read.result, read.errors, read.duration = result, errors, self._clock() - read.started
        self._fast = self._fast + 1 if read.duration < INLINE_BELOW else 0
        read.done.set()
        if notify:
            self._notify()

    def in_flight_for(self, now: float) -> float:
        """Seconds the read in flight has been running (0 when none is)."""
        read = self._inflight
        return 0.0 if read is None or read.done.is_set() else now - read.started

    def bound(self, read: _Read, deadline: float) -> float:
        """When to stop waiting for ``read``: the deadline, or sooner by the collector's own bound."""
        return deadline if self.timeout is None else min(deadline, read.started + self.timeout + GRACE)

    def keep(self, read: _Read, now: float) -> None:
        """Snapshot ``read`` (done or not) as this collection's result on the calling thread."""
        local = self._local
        if read.done.is_set():
            local.result, local.duration, local.success = read.result, read.duration, not read.errors
            for error in read.errors:
                self._warn(logging.WARNING, f"{self.name}:{error}", "collector failed", collector=self.name, err=error)
        else:
            local.result, local.duration, local.success = None, now - read.started, False
            self._warn(logging.WARNING, f"{self.name}:timeout",
                       "collector had no result within the collection's deadline; later collections join its read "
                       "instead of starting another", collector=self.name, running_seconds=round(now - read.started, 1))

    def refresh(self) -> None:
        """Read once, now, waiting as long as the read takes (for tools and benchmarks)."""
        read = self.start()
        read.done.wait()
        self.keep(read, self._clock())

    # -- this collection's snapshot, as seen by the collecting thread --------------------

    @property
    def result(self) -> Any:
        return getattr(self._local, "result", None)

    @property
    def duration(self) -> float:
        return getattr(self._local, "duration", 0.0)

    @property
    def success(self) -> bool:
        return getattr(self._local, "success", False)

    def close(self) -> None:
        """Close the source; an idle worker thread ends (one still in a stuck read stays, a daemon)."""
        with self._guard:
            worker, read = self._worker, self._inflight
            if worker is not None and (read is None or read.done.is_set()):
                self._worker = None
                self._wake.release()  # with no job: the worker returns, leaving _wake held again
                worker.join()
        close = getattr(self.source, "close", None)
        if close:
            close()


class Collection:
    """The source workers of one MeterProvider and the deadlines of the collections waiting on it."""

    def __init__(self, workers: list[SourceWorker], clock: Callable[[], float] = time.monotonic,
                 stuck_after: float = STUCK_AFTER):
        self.workers = workers
        self.metrics: list[Metric] = []  # the rows registered for this collection (``register``)
        self.stuck_after = stuck_after
        self._clock = clock
        self._cond = threading.Condition()
        self._scrapes: dict[int, tuple[float, float]] = {}  # thread id → (registered at, deadline)
        for c in workers:
            c._notify = self._wake

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    @contextmanager
    def scrape(self, deadline: float) -> Iterator[None]:
        """Run a collection on this thread with ``deadline`` (a ``time.monotonic()`` value).
        While registered, a collection already running on another thread yields to it."""
        me = threading.get_ident()
        with self._cond:
            self._scrapes[me] = (self._clock(), deadline)
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._scrapes.pop(me, None)

    def _deadline(self, fallback: float) -> float:
        """This thread's deadline (never later than the SDK's ``fallback``), moved earlier for
        any scrape queued behind it.  (``_scrapes`` changes under ``_cond``; a copy of its items,
        taken at once, is safe to read without it.)"""
        me = threading.get_ident()
        scrapes = list(self._scrapes.items())
        deadline = fallback
        for ident, (registered, theirs) in scrapes:
            deadline = min(deadline, theirs if ident == me else theirs - (theirs - registered) / 2)
        return deadline

    def collect(self, fallback_deadline: float | None = None) -> None:
        """Start every read (inline the ones that earned it, after handing the others to their
        workers), wait for them under the deadline, snapshot the results."""
        now = self._clock()
        if fallback_deadline is None:
            fallback_deadline = now + DEFAULT_SCRAPE_TIMEOUT
        first = self._deadline(fallback_deadline)
        # Inline: every non-blocking source, and at most one that may block (bounded, it could
        # still take its whole bound: the others keep reading beside it on their workers).
        inline: list[tuple[SourceWorker, _Read | None]] = []
        may_block = True
        for c in self.workers:
            r = c.inline_for(first, now, may_block)
            may_block = may_block and (r is None or c._nonblocking)
            inline.append((c, r))
        reads = [(c, r if r is not None else c.start(first)) for c, r in inline]
        inline.sort(key=lambda cr: not cr[0]._nonblocking)  # the non-blocking ones first
        for c, r in inline:
            if r is not None:
                # Re-checked per read: one that overran its bound leaves the rest to their workers.
                now = self._clock()
                deadline = self._deadline(fallback_deadline)
                if c.timeout is not None and not (c._nonblocking or c._takes_deadline) and now + c.timeout + GRACE > deadline:
                    r.started = now
                    c.hand_over(r, deadline)
                else:
                    c.run_inline(r, deadline)
        if all(r.done.is_set() for _, r in reads):
            now = self._clock()
            for c, r in reads:
                c.keep(r, now)
            return
        with self._cond:
            while True:
                now = self._clock()
                deadline = self._deadline(fallback_deadline)
                pending = [c.bound(r, deadline) for c, r in reads if not r.done.is_set()]
                pending = [at for at in pending if at > now]
                if not pending:
                    break
                self._cond.wait(min(pending) - now)
        now = self._clock()
        for c, r in reads:
            c.keep(r, now)

    def stuck(self) -> list[tuple[str, float]]:
        """(collector, seconds) of every read running longer than ``stuck_after``."""
        now = self._clock()
        return [(c.name, s) for c in self.workers if (s := c.in_flight_for(now)) > self.stuck_after]


Observer = Callable[[], Iterable[Observation]]


# Self-monitoring: one series per collector.  ``telemetry.instrument`` registers these last, so
# their callbacks see every observer failure of the collection.
DURATION = Metric(
    "otel_bare_metal.collector.duration", Kind.GAUGE, "s",
    "Time the collector took to read its source in this collection.", ("collector",), "self",
    classic=(Classic("node_scrape_collector_duration_seconds", _frozen({"collector": "collector"}),
                     "node_exporter: Duration of a collector scrape."),))
SUCCESS = Metric(
    "otel_bare_metal.collector.success", Kind.GAUGE, "",
    "1 when the collector read its source without error in this collection, else 0.", ("collector",), "self",
    classic=(Classic("node_scrape_collector_success", _frozen({"collector": "collector"}),
                     "node_exporter: Whether a collector succeeded."),))
SELF_MONITORING: tuple[Metric, ...] = (DURATION, SUCCESS)


def self_monitoring_observers(workers: list[SourceWorker]) -> dict[Metric, Observer]:
    def duration() -> Iterable[Observation]:
        return [Observation(c.duration, c.attributes) for c in workers]

    def success() -> Iterable[Observation]:
        return [Observation(1 if c.success else 0, c.attributes) for c in workers]

    return {DURATION: duration, SUCCESS: success}


def register(
    meter: Meter,
    observers: dict[Metric, Observer],
    workers: list[SourceWorker] | Collection,
    definitions: Iterable[Metric],
) -> list[Metric]:
    """Create one observable instrument per definition, in their order; the first one runs the
    collection before it observes.  ValueError when a definition has no observer or an observer
    no definition: a metric must never vanish quietly."""
    definitions = list(definitions)
    check_bound(definitions, observers)
    collection = workers if isinstance(workers, Collection) else Collection(workers)
    created: list[Metric] = []
    for d in definitions:
        observe = observers[d]
        create = {
            Kind.COUNTER: meter.create_observable_counter,
            Kind.UPDOWN: meter.create_observable_up_down_counter,
            Kind.GAUGE: meter.create_observable_gauge,
        }[d.kind]
        callback = _collecting(collection, observe) if not created else _callback(observe)
        create(d.name, callbacks=[callback], unit=d.unit, description=d.description)
        created.append(d)
    collection.metrics.extend(created)
    return created


def check_bound(definitions: list[Metric], observers: dict[Metric, Observer]) -> None:
    """Every definition (a row object) has an observer and every observer a definition, or
    ValueError naming them."""
    missing = sorted(d.name for d in set(definitions) - set(observers))
    unknown = sorted(getattr(m, "name", repr(m)) for m in set(observers) - set(definitions))
    problems = []
    if missing:
        problems.append(f"no observer for {', '.join(missing)}")
    if unknown:
        problems.append(f"no definition for {', '.join(unknown)}")
    if problems:
        raise ValueError("definitions and observers disagree: " + "; ".join(problems))


def _collecting(collection: Collection, observe: Observer) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def collect_then_observe(options: CallbackOptions) -> Iterable[Observation]:
        # Where the deadline of a collection without a scrape is made (deadline.py): the SDK hands
        # the first callback a relative budget; from here on it is one absolute value.
        sdk_seconds = getattr(options, "timeout_millis", DEFAULT_SCRAPE_TIMEOUT * 1000) / 1000
        collection.collect(collection._clock() + max(0.0, min(sdk_seconds - SDK_CALLBACK_SLACK, DEFAULT_SCRAPE_TIMEOUT)))
        return observe()

    return collect_then_observe


def _callback(observe: Observer) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return observe()

    return callback
