"""The resource and the meters: the semantic conventions' schema URL, and a service.instance.id
that survives restarts (derived from the node or host, as the conventions suggest)."""

from __future__ import annotations

import uuid

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.semconv.schemas import Schemas

from helpers import fetch, running_exporter, samples
from otel_bare_metal.telemetry.provider import meter_provider
from otel_bare_metal.telemetry.resource import SCHEMA_URL, SERVICE_INSTANCE_NAMESPACE, build_resource

CONVENTIONS_NAMESPACE = uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320")  # service.instance.id's note


def test_schema_url_is_a_released_semantic_conventions_version():
    assert SCHEMA_URL in {s.value for s in Schemas}
    assert build_resource({}).schema_url == SCHEMA_URL


def test_every_meter_carries_the_schema_url():
    reader = InMemoryMetricReader()
    provider = meter_provider(build_resource({}), [reader])
    meter = provider.get_meter("otel_bare_metal", "1.0")
    meter.create_observable_gauge("g", callbacks=[lambda o: []])
    counter = meter.create_counter("c")
    counter.add(1)
    data = reader.get_metrics_data()
    provider.shutdown()
    (rm,) = data.resource_metrics
    assert rm.resource.schema_url == SCHEMA_URL
    assert [sm.scope.schema_url for sm in rm.scope_metrics] == [SCHEMA_URL]
    # a caller that names another schema keeps it
    assert meter_provider(build_resource({}), []).get_meter("x", schema_url="https://example.com/s")._instrumentation_scope.schema_url \
        == "https://example.com/s"


def test_service_instance_id_is_a_uuid5_of_the_node_or_host():
    assert SERVICE_INSTANCE_NAMESPACE == CONVENTIONS_NAMESPACE
    host = build_resource({"OTEL_RESOURCE_ATTRIBUTES": "host.name=edge-7"}).attributes
    assert host["service.instance.id"] == str(uuid.uuid5(CONVENTIONS_NAMESPACE, "edge-7"))
    assert uuid.UUID(host["service.instance.id"]).version == 5
    node = build_resource({"K8S_NODE_NAME": "node-a", "OTEL_RESOURCE_ATTRIBUTES": "host.name=pod-x"}).attributes
    assert node["service.instance.id"] == str(uuid.uuid5(CONVENTIONS_NAMESPACE, "node-a"))


def test_service_instance_id_is_the_same_on_every_build_and_overridable():
    env = {"OTEL_RESOURCE_ATTRIBUTES": "host.name=edge-7"}
    assert build_resource(env).attributes["service.instance.id"] == build_resource(dict(env)).attributes["service.instance.id"]
    given = build_resource({"OTEL_RESOURCE_ATTRIBUTES": "host.name=edge-7,service.instance.id=mine"}).attributes
    assert given["service.instance.id"] == "mine"


def test_a_restarted_exporter_keeps_its_instance_id(tmp_path):
    """Through the process's own environment (OTEL_RESOURCE_ATTRIBUTES read by the SDK's detector)."""
    ids = []
    for _ in range(2):
        with running_exporter("--no-collector.filesystem", "--no-collector.hdhomerun",
                              env={"OTEL_RESOURCE_ATTRIBUTES": "host.name=restart-host"}) as base:
            info = [dict(k[1]) for k in samples(fetch(base + "/metrics")[2].decode()) if k[0] == "target_info"]
        (labels,) = info
        ids.append(labels["service_instance_id"])
    assert ids[0] == ids[1] == str(uuid.uuid5(CONVENTIONS_NAMESPACE, "restart-host"))
    # and given explicitly, it wins
    with running_exporter("--no-collector.filesystem", "--no-collector.hdhomerun",
                          env={"OTEL_RESOURCE_ATTRIBUTES": "host.name=restart-host,service.instance.id=pinned"}) as base:
        info = [dict(k[1]) for k in samples(fetch(base + "/metrics")[2].decode()) if k[0] == "target_info"]
    assert info[0]["service_instance_id"] == "pinned"
