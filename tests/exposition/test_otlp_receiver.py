"""The OTLP test receiver against the REAL OpenTelemetry OTLP metric exporters (gRPC and HTTP/protobuf).

Each test starts its own receiver on free loopback ports; every wait is bounded.
"""

from __future__ import annotations

import gzip
import http.client
import shutil
import subprocess
from collections.abc import Iterable

import grpc
import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc.metric_exporter")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http.metric_exporter")
pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc")

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter  # noqa: E402
from opentelemetry.metrics import CallbackOptions, Observation  # noqa: E402
from opentelemetry.sdk.metrics import Counter, MeterProvider, ObservableCounter  # noqa: E402
from opentelemetry.sdk.metrics.export import (  # noqa: E402
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource  # noqa: E402
from otlp_receiver import ExportMetricsServiceRequest, OTLPReceiver  # noqa: E402

RESOURCE = {
    "service.name": "otel-bare-metal",
    "service.version": "0.0.0-test",
    "host.name": "node-a",
    "k8s.node.name": "node-a",
    "deployment.environment.name": "test",
}
SCOPE = "otel_bare_metal.test"


def _cpu_time(_options: CallbackOptions) -> Iterable[Observation]:
    yield Observation(12.5, {"cpu.logical_number": 0, "cpu.mode": "user"})
    yield Observation(100.25, {"cpu.logical_number": 0, "cpu.mode": "idle"})
    yield Observation(7.0, {"cpu.logical_number": 1, "cpu.mode": "user"})


def _fs_usage(_options: CallbackOptions) -> Iterable[Observation]:
    base = {
        "system.device": "/dev/sda1",
        "system.filesystem.mountpoint": "/",
        "system.filesystem.type": "ext4",
        "system.filesystem.mode": "rw",
    }
    yield Observation(1000, {**base, "system.filesystem.state": "used"})
    yield Observation(3000, {**base, "system.filesystem.state": "free"})
    yield Observation(200, {**base, "system.filesystem.state": "reserved"})


def _up(_options: CallbackOptions) -> Iterable[Observation]:
    yield Observation(1, {"hdhomerun.device": "1040ABCD"})


def _instrument(provider: MeterProvider) -> None:
    meter = provider.get_meter(SCOPE, "1.2.3")
    meter.create_observable_counter("system.cpu.time", [_cpu_time], unit="s", description="CPU time")
    meter.create_observable_up_down_counter("system.filesystem.usage", [_fs_usage], unit="By")
    meter.create_observable_gauge("hdhomerun.up", [_up], unit="1")
    histogram = meter.create_histogram("otel_bare_metal.scrape.duration", unit="s")
    histogram.record(0.25, {"collector": "cpu"})
    histogram.record(0.75, {"collector": "cpu"})


def _make_exporter(protocol: str, rx: OTLPReceiver, **kwargs):
    if protocol == "grpc":
        return GrpcExporter(endpoint=rx.grpc_endpoint, insecure=True, timeout=5, **kwargs)
    return HttpExporter(endpoint=rx.http_metrics_url, timeout=5, **kwargs)


def _push_once(exporter, resource: dict | None = None) -> None:
    """The production path: a MeterProvider with a PeriodicExportingMetricReader, flushed."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000, export_timeout_millis=5_000)
    provider = MeterProvider(
        resource=Resource(resource or RESOURCE), metric_readers=[reader], shutdown_on_exit=False
    )
    try:
        _instrument(provider)
        assert provider.force_flush(timeout_millis=10_000)
    finally:
        provider.shutdown(timeout_millis=5_000)


def _metrics_data(resource: dict | None = None):
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource(resource or RESOURCE), metric_readers=[reader], shutdown_on_exit=False
    )
    _instrument(provider)
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


@pytest.fixture
def rx():
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_real_exporter_metrics_arrive_decoded(rx: OTLPReceiver, protocol: str) -> None:
    _push_once(_make_exporter(protocol, rx, headers={"x-tenant": "acme"}))
    rx.wait_for(lambda: {"system.cpu.time", "system.filesystem.usage"} <= rx.metric_names(), timeout=5)
    assert {r.protocol for r in rx.received} == {protocol}
    assert all(r.headers.get("x-tenant") == "acme" for r in rx.received)

    cpu = rx.latest("system.cpu.time")
    assert cpu.resource == RESOURCE
    assert (cpu.scope, cpu.scope_version) == (SCOPE, "1.2.3")
    assert (cpu.unit, cpu.kind, cpu.is_monotonic, cpu.temporality) == ("s", "sum", True, "cumulative")
    assert cpu.aggregation_temporality == "cumulative"
    assert cpu.description == "CPU time"
    assert sorted(cpu.points, key=lambda p: (p[0]["cpu.logical_number"], p[0]["cpu.mode"])) == [
        ({"cpu.logical_number": 0, "cpu.mode": "idle"}, 100.25),
        ({"cpu.logical_number": 0, "cpu.mode": "user"}, 12.5),
        ({"cpu.logical_number": 1, "cpu.mode": "user"}, 7.0),
    ]
    assert isinstance(cpu.points[0][0]["cpu.logical_number"], int)  # an int attribute stays an int

    fs = rx.latest("system.filesystem.usage")
    assert (fs.unit, fs.kind, fs.is_monotonic, fs.temporality) == ("By", "sum", False, "cumulative")
    assert fs.value(**{"system.filesystem.state": "free"}) == 3000
    assert fs.value(**{"system.filesystem.state": "reserved", "system.filesystem.mountpoint": "/"}) == 200

    up = rx.latest("hdhomerun.up")
    assert (up.kind, up.is_monotonic, up.temporality, up.unit) == ("gauge", None, None, "1")
    assert up.points == [({"hdhomerun.device": "1040ABCD"}, 1)]

    hist = rx.latest("otel_bare_metal.scrape.duration")
    assert hist.kind == "histogram" and hist.temporality == "cumulative"
    ((attrs, value),) = hist.points
    assert attrs == {"collector": "cpu"}
    assert (value.count, value.sum, value.min, value.max) == (2, 1.0, 0.25, 0.75)
    assert sum(value.bucket_counts) == 2


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_delta_temporality_is_visible(rx: OTLPReceiver, protocol: str) -> None:
    delta = {Counter: AggregationTemporality.DELTA, ObservableCounter: AggregationTemporality.DELTA}
    _push_once(_make_exporter(protocol, rx, preferred_temporality=delta))  # the reader applies the preference
    cpu = rx.latest("system.cpu.time")
    assert (cpu.is_monotonic, cpu.temporality) == (True, "delta")


def test_standard_env_vars_grpc(rx: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.grpc_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,authorization=Bearer%20s3cret")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    exporter = GrpcExporter()
    assert exporter.export(_metrics_data()) is MetricExportResult.SUCCESS
    (entry,) = rx.received
    assert entry.protocol == "grpc" and entry.accepted
    assert entry.headers["x-tenant"] == "acme"
    assert entry.headers["authorization"] == "Bearer s3cret"
    assert "system.cpu.time" in rx.metric_names()


def test_standard_env_vars_http_gzip(rx: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint)  # base URL: /v1/metrics is appended
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,authorization=Bearer%20s3cret")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    exporter = HttpExporter()
    assert exporter.export(_metrics_data()) is MetricExportResult.SUCCESS
    (entry,) = rx.received
    assert (entry.protocol, entry.path, entry.content_type) == ("http", "/v1/metrics", "application/x-protobuf")
    assert entry.content_encoding == "gzip"
    assert entry.headers["authorization"] == "Bearer s3cret"
    assert rx.latest("system.cpu.time").unit == "s"


def test_explicit_gzip_compression_http(rx: OTLPReceiver) -> None:
    exporter = _make_exporter("http", rx, compression=HttpCompression.Gzip)
    assert exporter.export(_metrics_data()) is MetricExportResult.SUCCESS
    assert rx.received[0].content_encoding == "gzip"
    assert rx.latest("system.filesystem.usage").resource["host.name"] == "node-a"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_retryable_failure_is_retried(rx: OTLPReceiver, protocol: str) -> None:
    rx.fail_next(1)  # UNAVAILABLE / 503: retryable; the exporter backs off ~1 s and tries again
    exporter = _make_exporter(protocol, rx)
    assert exporter.export(_metrics_data(), timeout_millis=8_000) is MetricExportResult.SUCCESS
    first, second = rx.received
    assert not first.accepted and first.status == ("UNAVAILABLE" if protocol == "grpc" else "503")
    assert second.accepted
    assert len(rx.requests) == 1


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_permanent_failure_is_not_retried(rx: OTLPReceiver, protocol: str) -> None:
    rx.fail_always(grpc_code=grpc.StatusCode.INVALID_ARGUMENT, http_status=400)
    exporter = _make_exporter(protocol, rx)
    assert exporter.export(_metrics_data()) is MetricExportResult.FAILURE
    assert len(rx.received) == 1 and not rx.received[0].accepted
    assert rx.requests == []
    rx.succeed()
    assert exporter.export(_metrics_data()) is MetricExportResult.SUCCESS


def test_slow_receiver_hits_exporter_timeout(rx: OTLPReceiver) -> None:
    rx.set_delay(3)
    exporter = HttpExporter(endpoint=rx.http_metrics_url, timeout=0.5)
    assert exporter.export(_metrics_data(), timeout_millis=1_000) is MetricExportResult.FAILURE


def test_raw_http_edge_cases(rx: OTLPReceiver) -> None:
    body = ExportMetricsServiceRequest().SerializeToString()

    def post(path: str, payload: bytes, headers: dict[str, str]) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", rx.http_port, timeout=5)
        try:
            conn.request("POST", path, payload, headers)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    proto = {"Content-Type": "application/x-protobuf"}
    assert post("/v1/traces", body, proto) == 404
    assert post("/v1/metrics", body, {"Content-Type": "text/plain"}) == 415
    assert post("/v1/metrics", b"\xff\xff not protobuf", proto) == 400
    assert post("/v1/metrics", gzip.compress(body), {**proto, "Content-Encoding": "gzip"}) == 200
    assert post("/v1/metrics", b'{"resourceMetrics": []}', {"Content-Type": "application/json"}) == 200
    assert len(rx.requests) == 2
    with pytest.raises(TimeoutError):
        rx.wait_for(lambda: len(rx.requests) > 2, timeout=0.2)


def test_only_loopback() -> None:
    with pytest.raises(ValueError):
        OTLPReceiver("0.0.0.0")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make a test certificate")
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_tls_with_otel_exporter_otlp_certificate(tmp_path, monkeypatch: pytest.MonkeyPatch, protocol: str) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the session's CA file, so with
    # either set (as on this machine) the HTTP exporter ignores OTEL_EXPORTER_OTLP_CERTIFICATE.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with OTLPReceiver(tls_cert_file=str(cert), tls_key_file=str(key)) as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(cert))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
        if protocol == "grpc":
            assert rx.grpc_endpoint.startswith("https://")
            exporter = GrpcExporter(endpoint=rx.grpc_endpoint)
        else:
            exporter = HttpExporter(endpoint=rx.http_metrics_url)
        assert exporter.export(_metrics_data()) is MetricExportResult.SUCCESS
        assert rx.latest("system.cpu.time").resource["service.name"] == "otel-bare-metal"
