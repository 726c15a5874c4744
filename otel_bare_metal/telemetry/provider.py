"""The MeterProvider every path uses, configured for an exporter that has no traces.

Exemplars link a measurement to the trace that was active when it was recorded.  Observable
callbacks run inside a collection, never inside a user's trace, so there is nothing to link;
yet the SDK's default reservoir is offered and collected for every point of every collection
(about a tenth of a 256-CPU scrape).  Exemplars are therefore switched off with the SDK's own
knobs: the AlwaysOff filter and a View whose reservoir keeps nothing.
"""

from __future__ import annotations

from typing import Any, Sequence

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, ExemplarReservoir, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import Attributes

from otel_bare_metal.telemetry.resource import SCHEMA_URL


class NoExemplars(ExemplarReservoir):
    """A reservoir that keeps nothing."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def offer(self, value, time_unix_nano, attributes, context) -> None:  # noqa: ANN001
        return None

    def collect(self, point_attributes) -> list:  # noqa: ANN001
        return []


def _no_exemplars(aggregation_type: type) -> Any:
    return lambda **kwargs: NoExemplars(**kwargs)


NO_EXEMPLAR_VIEWS = (View(instrument_name="*", exemplar_reservoir_factory=_no_exemplars),)


class _SemconvMeterProvider(MeterProvider):
    """Every meter it gives follows the semantic conventions of ``SCHEMA_URL`` unless told
    otherwise (the scope's schema URL; through a Collector ``otel_scope_schema_url``)."""

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Attributes = None) -> Meter:
        return super().get_meter(name, version, schema_url or SCHEMA_URL, attributes)


def meter_provider(resource: Resource, readers: Sequence[MetricReader]) -> MeterProvider:
    return _SemconvMeterProvider(
        resource=resource,
        metric_readers=list(readers),
        views=list(NO_EXEMPLAR_VIEWS),
        exemplar_filter=AlwaysOffExemplarFilter(),
    )
