"""Classic naming (``--metrics.naming classic``): node_exporter's and hdhomerun_exporter's names.

Each classic metric is derived from its definitions-table row's own observations (see
``definitions.Classic``): labels and values renamed, some ``state`` values kept and summed, or
the value taken from an attribute.  The instruments are still observable instruments on the
same MeterProvider, reading the same collection; only their names and labels differ.
"""

from __future__ import annotations

from typing import Any, Iterable

from opentelemetry.metrics import Observation

from otel_bare_metal import limits
from otel_bare_metal.telemetry.collection import Observer
from otel_bare_metal.telemetry.definitions import Classic, Kind, Metric


def instrument_for(parent: Metric, classic: Classic, drop: frozenset[str] = frozenset()) -> Metric:
    """The instrument whose Prometheus rendering is exactly ``classic.name``."""
    kind = classic.kind or parent.kind
    name = classic.name[: -len("_total")] if kind is Kind.COUNTER and classic.name.endswith("_total") else classic.name
    # No unit: the classic name already says it, and a unit would make a translator add it again
    # (the Collector's prometheus exporters render a pushed hdhomerun_tuner_raw_bytes_per_second
    # with unit By/s as ..._bytes_per_second_per_second).
    labels = tuple(label for attr, label in classic.labels.items() if attr not in drop) + tuple(classic.constant)
    return Metric(name, kind, "", classic.description, labels, parent.collector)


def classic_observer(classic: Classic, observe: Observer, drop: frozenset[str] = frozenset()) -> Observer:
    labels = [(attr, label, classic.values.get(attr)) for attr, label in classic.labels.items() if attr not in drop]
    states, state_attribute = set(classic.states), classic.state_attribute
    value_attr, value_map = classic.value_from if classic.value_from else (None, None)
    cache: limits.BoundedCache[tuple, dict[str, Any]] = limits.BoundedCache(limits.ATTRIBUTE_SETS, lru=False)

    def derived() -> Iterable[Observation]:
        groups: dict[tuple, list] = {}
        for obs in observe():
            attrs = obs.attributes or {}
            if states and attrs.get(state_attribute) not in states:
                continue
            value = value_map[str(attrs[value_attr])] if value_attr and value_map is not None else obs.value
            key = tuple(attrs.get(attr) for attr, _, _ in labels)
            group = groups.get(key)
            if group is None:
                groups[key] = [key, value]
            else:  # summing states: node_filesystem_free_bytes = free + reserved
                group[1] += value
        out = []
        for key, value in groups.values():
            classic_attrs = cache.get(key)
            if classic_attrs is None:
                classic_attrs = {
                    label: (vmap.get(v, v) if vmap else v) for (attr, label, vmap), v in zip(labels, key) if v is not None
                }
                classic_attrs.update(classic.constant)
                cache.put(key, classic_attrs)
            out.append(Observation(value, classic_attrs))
        return out

    return derived


def classic_table(observers: dict[Metric, Observer], parents: Iterable[Metric],
                  drop: frozenset[str] = frozenset()) -> tuple[list[Metric], dict[Metric, Observer]]:
    """The classic instruments for every row of ``parents`` that has an observer, and their observers."""
    definitions: list[Metric] = []
    classic_observers: dict[Metric, Observer] = {}
    for parent in parents:
        observe = observers.get(parent)
        if observe is None:
            continue
        for classic in parent.classic:
            inst = instrument_for(parent, classic, drop)
            definitions.append(inst)
            classic_observers[inst] = classic_observer(classic, observe, drop)
    return definitions, classic_observers
