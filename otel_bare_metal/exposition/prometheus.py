"""The Prometheus pull path: the OpenTelemetry Prometheus reader on a private registry.

Traps this module is built around (see docs/architecture.md):

* The reader hands each collection to its registry collector through a queue; two scrapes at
  once can return one response with every series twice and another empty.  Rendering is
  therefore serialised with a lock: one collection, one response.
* The reader's default cardinality limit (2000 points per instrument) silently folds a
  256-CPU host's ``system.cpu.time`` (2048 points) into an ``otel_metric_overflow`` series.
  We raise the limit far beyond any real host.
* ``otel_scope_*`` labels on every sample double the payload; they are off unless asked for.

Speed: the reader's translation into prometheus_client families and prometheus_client's text
encoder cost as much as the SDK's collection itself (about 6 µs and 5 µs per point against the
SDK's 12 µs, measured on a 256-CPU host; see bench/README.md).  For the Prometheus text format
the reader therefore hands its MetricsData to ``TextEncoder``, which writes the same bytes the
stock path writes (text or OpenMetrics), caching each family's header and each series'
``name{labels} `` prefix between scrapes (the SDK keeps one attributes dict per series).
Scope labels take the stock path.  A test holds the two paths to byte-identical output.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import nullcontext
from typing import Iterable
from dataclasses import replace

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, Gauge, MetricsData, Sum
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

from otel_bare_metal import limits
from otel_bare_metal._otel_compat import HookedPrometheusReader, map_unit, sanitize_attribute, sanitize_full_name
from otel_bare_metal.deadline import SDK_COLLECT_MARGIN, remaining, scrape_deadline
from otel_bare_metal.logutil import RateLimitedLog
from otel_bare_metal.telemetry.definitions import Metric

log = logging.getLogger(__name__)

# Points per instrument before the SDK folds series into an overflow series.  A 1024-CPU host
# has 10 240 cpu-time points; 2000 mounts × 3 states is 6000.  Far above both.
CARDINALITY_LIMIT = 1_000_000
CARDINALITY_LIMITS: dict[type, int] = {
    cls: CARDINALITY_LIMIT
    for cls in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)
}


class _RenamingReader(HookedPrometheusReader):
    """The stock reader, with the Prometheus names the metric rows ask for (overrides, ``_ratio``).

    The OTLP path keeps the instrument names; only this reader sees the new ones.  With
    ``capture`` set, a collection is kept for ``TextEncoder`` instead of being queued for the
    prometheus_client registry, as the SDK made it: the encoder applies the same ``renames``
    itself, once per metric name, rather than copying the collection to rename it.
    """

    def __init__(self, renames: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.renames = renames
        self.capture = False
        self.captured: MetricsData | None = None

    def on_collect(self, metrics_data: MetricsData | None) -> MetricsData | None:
        if self.capture:
            self.captured = metrics_data
            return None
        if metrics_data is not None and self.renames:
            metrics_data = _rename(metrics_data, self.renames)
        return metrics_data


def _rename(data: MetricsData, renames: dict[str, str]) -> MetricsData:
    def scope(sm):
        if not any(m.name in renames for m in sm.metrics):
            return sm
        return replace(sm, metrics=[replace(m, name=renames[m.name]) if m.name in renames else m for m in sm.metrics])

    return replace(
        data,
        resource_metrics=[replace(rm, scope_metrics=[scope(sm) for sm in rm.scope_metrics]) for rm in data.resource_metrics],
    )


def prometheus_renames(metrics: Iterable[Metric]) -> dict[str, str]:
    """instrument name → the name the reader must give it so that the exposition shows
    ``Metric.prometheus_name``: an override, or ``_ratio`` on a ratio (the reader appends no
    suffix for unit ``1``; Prometheus's OTLP translation does)."""
    return {m.name: m.prometheus_name for m in metrics if m.prometheus or m.ratio}


class TextEncoder:
    """MetricsData → the Prometheus text format (0.0.4) or OpenMetrics 1.0, byte for byte what
    the stock reader with ``prometheus_client``'s encoders produces, with per-series caches."""

    MAX_CACHED = limits.SERIES_PREFIXES

    def __init__(self, target_info: bool = True, renames: dict[str, str] | None = None):
        self._target_info = target_info
        self._renames = renames if renames is not None else {}  # instrument name → the name to show (read live)
        self._target_labels: str | None = None
        self._headers: dict[tuple, tuple[str, str, str]] = {}
        self._series: limits.BoundedCache[int, tuple[object, tuple[str, ...], str, str]] = limits.BoundedCache(
            self.MAX_CACHED, lru=False)
        # value → its text, for this encoding and the one before: most values repeat from scrape
        # to scrape (sizes, counts, states, 1s); what did not occur in either is forgotten.
        self._values: dict[float, str] = {}
        self._values_before: dict[float, str] = {}
        self._label_names: dict[str, str] = {}

    def encode(self, data: MetricsData | None, openmetrics: bool = False) -> bytes:
        out: list[str] = []
        self._values_before, self._values = self._values, {}
        if data is not None:
            if self._target_info:
                if self._target_labels is None:
                    attributes: dict = {}
                    for rm in data.resource_metrics:
                        attributes.update(rm.resource.attributes)
                    self._target_labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(
                        (sanitize_attribute(k), _label_value(v)) for k, v in attributes.items()))
                head = "# HELP target Target metadata\n# TYPE target info\n" if openmetrics else \
                    "# HELP target_info Target metadata\n# TYPE target_info gauge\n"
                out.append(f"{head}target_info{{{self._target_labels}}} 1.0\n")
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        self._metric(metric, out, openmetrics)
        if openmetrics:
            out.append("# EOF\n")
        return "".join(out).encode("utf-8")

    def _header(self, metric, counter: bool) -> tuple[str, str, str]:
        name = self._renames.get(metric.name, metric.name)
        key = (name, metric.description, metric.unit, counter)
        header = self._headers.get(key)
        if header is None:
            # the order prometheus_client's CounterMetricFamily / Metric apply them
            family = sanitize_full_name(name)
            if counter and family.endswith("_total"):
                family = family[: -len("_total")]
            unit = map_unit(metric.unit or "")
            if unit and not family.endswith("_" + unit):
                family += "_" + unit
            kind = "counter" if counter else "gauge"
            sample = family + "_total" if counter else family
            doc = metric.description or ""
            text_doc = doc.replace("\\", r"\\").replace("\n", r"\n")
            text = f"# HELP {sample} {text_doc}\n# TYPE {sample} {kind}\n"
            om_unit = openmetrics_unit(unit)
            om = f"# HELP {family} {_escape(doc)}\n# TYPE {family} {kind}\n" + (f"# UNIT {family} {om_unit}\n" if om_unit else "")
            header = self._headers[key] = (text, om, sample)
        return header

    def _metric(self, metric, out: list[str], openmetrics: bool) -> None:
        metric_data = metric.data
        if isinstance(metric_data, Sum):
            counter = metric_data.is_monotonic or metric_data.aggregation_temporality != AggregationTemporality.CUMULATIVE
        elif isinstance(metric_data, Gauge):
            counter = False
        else:  # the exporter makes no histograms; refuse rather than write something wrong
            raise TypeError(f"unsupported metric data {type(metric_data).__name__}")
        text_head, om_head, name = self._header(metric, counter)
        points = metric_data.data_points
        entries = [self._entry(p.attributes, name) for p in points]
        out.append(om_head if openmetrics else text_head)
        first_keys = entries[0][1] if entries else ()
        if all(e[1] == first_keys for e in entries):
            value = self._value
            out.extend(f"{e[2]}{value(p.value)}\n" for e, p in zip(entries, points))
            return
        # Points with different label sets: the stock reader gives every series the union, "" where missing.
        keys = sorted({k for e in entries for k in e[1]})
        for p in points:
            values = {self._label_name(k): _label_value(v) for k, v in p.attributes.items()}
            labels = ",".join(f'{k}="{_escape(values.get(k, ""))}"' for k in keys)
            out.append(f"{name}{{{labels}}} {floatToGoString(p.value)}\n" if keys else f"{name} {floatToGoString(p.value)}\n")

    def _entry(self, attributes, name: str) -> tuple[object, tuple[str, ...], str, str]:
        """The cached ``name{labels} `` prefix of one series (the SDK keeps one attributes dict
        per series, so its identity is the key; keeping it in the entry keeps the id unique)."""
        entry = self._series.get(id(attributes))
        if entry is None or entry[0] is not attributes or entry[3] != name:
            pairs = sorted((self._label_name(k), _label_value(v)) for k, v in (attributes or {}).items())
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
            prefix = f"{name}{{{labels}}} " if pairs else f"{name} "
            entry = (attributes, tuple(k for k, _ in pairs), prefix, name)
            self._series.put(id(attributes), entry)
        return entry

    def _value(self, value: float) -> str:
        """``floatToGoString(value)``, remembered from the last encoding (zero never is: 0.0 == -0.0)."""
        text = self._values_before.get(value) or floatToGoString(value)
        if value:
            self._values[value] = text
        return text

    def _label_name(self, key: str) -> str:
        name = self._label_names.get(key)
        if name is None:
            name = self._label_names[key] = sanitize_attribute(key)
        return name


def openmetrics_unit(unit: str) -> str:
    """The ``# UNIT`` an OpenMetrics page declares for a family whose Prometheus unit suffix is
    ``unit`` (``map_unit`` of the instrument's unit): the unit itself, or ``""`` (no UNIT line)
    for a rate (``bytes_per_second``, ``per_second``).

    OpenMetrics makes UNIT optional.  A scraper that reads it turns it back into an OTel unit
    (the Collector's ``prometheus`` receiver: ``bytes_per_second`` → ``By/s``), and Prometheus's
    OTLP translation (``otlptranslator``, in the Collector's Prometheus exporters and remote
    write) then appends the ``per_second`` part again, because it compares whole name tokens:
    ``hdhomerun_tuner_raw_rate_bytes_per_second_per_second``.  A single-word unit (``seconds``,
    ``bytes``) is found among the name's tokens and round-trips unchanged, so it keeps its line.
    """
    return "" if unit.startswith("per_") or "_per_" in unit else unit


class _OpenMetricsUnits:
    """A registry view for the stock encoders: every family as the registry gives it, with the
    ``# UNIT`` of a rate left out (:func:`openmetrics_unit`), as ``TextEncoder`` writes it."""

    def __init__(self, registry: CollectorRegistry):
        self._registry = registry

    def collect(self):
        for family in self._registry.collect():
            if family.unit and not openmetrics_unit(family.unit):
                family.unit = ""  # a fresh family per collection: the reader builds new ones
            yield family


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _label_value(value: object) -> str:
    if type(value) is int:  # json.dumps writes a plain int as str does, 40 times slower (not bool)
        return str(value)
    return value if isinstance(value, str) else json.dumps(value, default=str)


# Name escapings (the ``escaping`` parameter of the Accept header) under which the stock encoders
# write every name the reader produces unchanged.  The reader sanitises metric names and label
# names to the legacy character set ([a-zA-Z_:][a-zA-Z0-9_:]*), so ``underscores`` and
# ``allow-utf-8`` leave them as they are.  ``dots`` rewrites every ``_`` as ``__`` and ``values``
# prefixes ``U__`` in places; those go to the stock path (tests/exposition/test_accept_escaping.py
# holds the two paths to the same bytes for every Accept header Prometheus 2 and 3 send).
FAST_ESCAPINGS = frozenset({UNDERSCORES, ALLOWUTF8})


def fast_format(encoder) -> str | None:
    """``"text"`` or ``"openmetrics"`` when ``TextEncoder`` writes what ``encoder`` (as chosen by
    ``choose_encoder``) would write; ``None`` when only the stock path can."""
    kind = getattr(encoder, "func", encoder)
    escaping = (getattr(encoder, "keywords", None) or {}).get("escaping", UNDERSCORES)
    if escaping not in FAST_ESCAPINGS:
        return None
    if kind is generate_latest:
        return "text"
    if kind is generate_openmetrics:
        return "openmetrics"
    return None


def negotiate(accept: str | None) -> tuple[object, str]:
    """prometheus_client's ``choose_encoder``, except that an ``Accept`` it cannot parse (e.g.
    ``application/openmetrics-text; version=abc``) gets the Prometheus text format, as Prometheus' own
    negotiation falls back to it, instead of an error."""
    try:
        return choose_encoder(accept or "")
    except Exception:
        return choose_encoder("")


class PageUnavailable(Exception):
    """The SDK's collection itself failed and no complete page exists yet to serve instead."""


class PrometheusPage:
    """A Prometheus reader with its own registry; ``render`` gives one complete exposition.

    Renders are serialised (one collection, one response).  ``collection``, when set, is the
    provider's :class:`~otel_bare_metal.telemetry.collection.Collection`: a render registers
    its deadline there, so the collection waits no longer than the scrape may.  A render that
    cannot have the lock before its deadline (another render or collection holds it) serves
    the last complete page in the same format instead of waiting: never torn, never empty,
    never late.  Only when no page in that format has been rendered yet does it wait for the
    lock (whose holder is itself bounded by its own deadline).

    **Concurrent scrapes share a collection** when it is as fresh as their own would be: a
    render that had to wait for the lock answers with the page the render before it just made,
    in the same format, if that render's collection *started after this request arrived*
    (nothing older than the request is ever served as its own collection).  Scrapes that
    queue behind a render (HA Prometheus pairs, a Collector beside a Prometheus) then cost one
    collection per queue instead of one each.
    """

    def __init__(self, scope_labels: bool = False, target_info: bool = True, metrics: Iterable[Metric] = ()):
        renames = prometheus_renames(metrics)  # one dict: the reader and the encoder see the same updates
        self._fast = None if scope_labels else TextEncoder(target_info, renames)
        self.client_registry = CollectorRegistry(auto_describe=False)  # prometheus_client's, for the stock encoders
        self.reader = _RenamingReader(
            renames,
            disable_target_info=not target_info,
            scope_info_enabled=scope_labels,
            registry=self.client_registry,
            cardinality_limits=CARDINALITY_LIMITS,
        )
        self._lock = threading.Lock()
        self._last: dict[str, bytes] = {}  # content type → the last complete page
        self._started: dict[str, float] = {}  # content type → when the last page's collection started
        self._warn = RateLimitedLog(log)
        self._collection = None
        # False: keep no earlier page, so never serve one: every render is its own collection and
        # a failed one raises PageUnavailable (/probe, whose page must be the probe's own reading).
        self.keep_last = True
        self.served_last = 0  # renders answered with the last page (for tests and logs)
        self.shared = 0  # renders answered with a collection that started after they arrived

    @property
    def collection(self):
        return self._collection

    @collection.setter
    def collection(self, collection) -> None:
        """The provider's Collection (set by the app); its registered rows name the series."""
        self._collection = collection
        if collection is not None:
            self.reader.renames.update(prometheus_renames(collection.metrics))

    def render(self, accept: str | None = None, deadline: float | None = None) -> tuple[bytes, str]:
        """Collect once and encode as the client asked (Prometheus text or OpenMetrics), by
        ``deadline`` (a ``time.monotonic()`` value; default: a scrape without the timeout header,
        see ``deadline.scrape_deadline``)."""
        arrived = time.monotonic()
        encoder, content_type = negotiate(accept)
        deadline = scrape_deadline(None) if deadline is None else deadline
        if not self._lock.acquire(blocking=False):
            if not self._lock.acquire(timeout=remaining(deadline)):
                last = self._last.get(content_type)
                if last is not None:
                    self.served_last += 1
                    log.debug("render lock busy past the scrape's deadline; serving the last complete page")
                    return last, content_type
                self._lock.acquire()
            if self._started.get(content_type, -1.0) >= arrived:  # made while this request waited
                try:
                    self.shared += 1
                    return self._last[content_type], content_type
                finally:
                    self._lock.release()
        started = time.monotonic()
        try:
            with self.collection.scrape(deadline) if self.collection is not None else nullcontext():
                body = self._render(encoder, deadline)
        except Exception as e:  # the SDK's own collection failed, e.g. MetricsTimeoutError past its budget
            last = self._last.get(content_type)
            self._warn(logging.WARNING, type(e).__name__,
                       "collection failed; serving the last complete page" if last is not None
                       else "collection failed; no complete page to serve yet", err=f"{type(e).__name__}: {e}")
            if last is None:
                raise PageUnavailable(f"{type(e).__name__}: {e}") from e
            self.served_last += 1
            return last, content_type
        else:
            if self.keep_last:
                self._last[content_type] = body
                self._started[content_type] = started
            return body, content_type
        finally:
            self._lock.release()

    def _render(self, encoder, deadline: float) -> bytes:
        fast = fast_format(encoder)
        if self._fast is not None and fast is not None:
            self.reader.capture = True
            try:
                # The SDK raises if its collection outlives timeout_millis: our deadline, which the
                # collection itself keeps, must end it first (deadline.SDK_COLLECT_MARGIN).
                self.reader.collect(timeout_millis=(remaining(deadline) + SDK_COLLECT_MARGIN) * 1000)
                data, self.reader.captured = self.reader.captured, None
            finally:
                self.reader.capture = False
            return self._fast.encode(data, openmetrics=fast == "openmetrics")
        return encoder(_OpenMetricsUnits(self.client_registry))

    def shutdown(self) -> None:
        self.reader.shutdown()
