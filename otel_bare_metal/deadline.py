"""One deadline per collection, and every margin taken from it, in one place.

A deadline is an absolute ``time.monotonic()`` value.  It is made once, where a collection
starts, and the same value travels down to the socket read; only the calls that take a
relative timeout (the SDK's ``collect(timeout_millis=)``, a lock's ``acquire(timeout=)``,
``socket.settimeout``) get ``deadline - now``, computed at that call.

Where it is made:

* **a scrape** (``/metrics``, ``/probe``): ``X-Prometheus-Scrape-Timeout-Seconds`` less
  ``--timeout-offset`` from the moment the request is served (:func:`scrape_deadline`);
* **an OTLP export, or any reader without a scrape**: the time the SDK gives the first
  observable callback (``CallbackOptions.timeout_millis``, at most
  :data:`DEFAULT_SCRAPE_TIMEOUT`) less :data:`SDK_CALLBACK_SLACK`.

Where it goes: ``PrometheusPage.render(accept, deadline)`` → ``Collection.scrape(deadline)`` →
``Collection.collect`` (moved earlier for a scrape queued behind it) → ``SourceWorker.start``
→ ``source.read(deadline=…)`` less :data:`SOURCE_MARGIN` → ``Fleet.read`` → ``Device.read`` →
``Client.get(…, deadline=…)`` → each ``connect``/``send``/``recv`` gets the time left.
``/probe`` hands its deadline to the device read and then to its page's render.

The margins are the constants below, each with the reason it exists.
"""

from __future__ import annotations

import time

#: The scrape timeout assumed when a request does not send ``X-Prometheus-Scrape-Timeout-Seconds``
#: (Prometheus's default ``scrape_timeout``); also the longest any collection may take.
DEFAULT_SCRAPE_TIMEOUT = 10.0
#: Seconds kept back from the scrape timeout Prometheus sends, for the response to travel back
#: (blackbox_exporter's ``--timeout-offset``; the flag's default).
DEFAULT_TIMEOUT_OFFSET = 0.5
#: Seconds the SDK's own collection timeout is set past our deadline when the Prometheus page
#: collects: the collection is bounded by our deadline, and the SDK raising
#: ``MetricsTimeoutError`` first would throw away a page that was still on time.
SDK_COLLECT_MARGIN = 1.0
#: Seconds kept back from the SDK's callback timeout (an OTLP export's budget) for the
#: callbacks after the first, so the SDK never raises its own timeout.
SDK_CALLBACK_SLACK = 0.2
#: Seconds before the collection's deadline that a source taking a ``deadline`` is told to be
#: done by, so its result is handed over before the collection stops waiting.
SOURCE_MARGIN = 0.1
#: Seconds past a collector's own bound (its source's ``timeout``: the mount timeout, the
#: HDHomeRun timeout) before it counts as timed out: the source reports its own partial failure
#: (one hung mount, one dead device) rather than vanishing whole on a busy machine.
GRACE = 0.5
#: Seconds a waiter keeps waiting past a deadline for a worker that returns right at it (the
#: HDHomeRun fleet waiting on its device reads).
HANDOVER = 0.05

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


def scrape_budget(header: str | None, offset: float = DEFAULT_TIMEOUT_OFFSET) -> float:
    """Seconds a scrape may take: ``X-Prometheus-Scrape-Timeout-Seconds`` less ``offset``, as
    blackbox_exporter computes it.  Without the header (or with one that is not a positive
    number) Prometheus's default scrape timeout, 10 s, less the offset.  A header smaller
    than the offset leaves half the header."""
    try:
        timeout = float(header) if header else 0.0
    except ValueError:
        timeout = 0.0
    if not (0 < timeout < 86_400):  # also rejects nan and inf
        timeout = DEFAULT_SCRAPE_TIMEOUT
    budget = timeout - offset
    return budget if budget > 0 else timeout / 2


def scrape_deadline(header: str | None, offset: float = DEFAULT_TIMEOUT_OFFSET, now: float | None = None) -> float:
    """The deadline of a scrape served ``now`` (default: this instant): see :func:`scrape_budget`."""
    return (time.monotonic() if now is None else now) + scrape_budget(header, offset)


def remaining(deadline: float, now: float | None = None) -> float:
    """Seconds left until ``deadline`` (never negative), for a call that takes a relative timeout."""
    return max(0.0, deadline - (time.monotonic() if now is None else now))
