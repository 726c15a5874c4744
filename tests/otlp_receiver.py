"""A small, real OTLP metrics receiver for tests.

Built from the official ``opentelemetry-proto`` service definitions (the generated
``metrics_service_pb2_grpc`` stubs) and ``grpcio``, it plays the part of an OpenTelemetry
Collector's ``otlp`` receiver:

* gRPC ``opentelemetry.proto.collector.metrics.v1.MetricsService/Export`` on
  ``127.0.0.1:<free port>`` (plaintext, or TLS when given a certificate and key);
* HTTP ``POST /v1/metrics`` on another free loopback port, ``application/x-protobuf`` (and
  ``application/json``), body optionally ``Content-Encoding: gzip`` or ``deflate``.

Every ``ExportMetricsServiceRequest`` is recorded together with the request headers (gRPC
metadata or HTTP headers, keys lower-cased), so tests can check names, units, monotonicity,
temporality, attributes, the resource and ``OTEL_EXPORTER_OTLP_HEADERS``. The receiver can be
told to fail (gRPC ``UNAVAILABLE`` / HTTP 503 by default, both retryable per the OTLP
specification) for the next N requests or until told otherwise, and to answer slowly, to test
retries, timeouts and an unreachable or hung Collector.

Only loopback addresses are used and every wait is bounded.

Usage::

    with OTLPReceiver() as rx:
        exporter = OTLPMetricExporter(endpoint=rx.grpc_endpoint, insecure=True)
        ...
        rx.wait_for(lambda: "system.cpu.time" in rx.metric_names(), timeout=5)
        (cpu,) = [m for m in rx.metrics() if m.name == "system.cpu.time"]
        assert cpu.kind == "sum" and cpu.is_monotonic and cpu.temporality == "cumulative"
"""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

__all__ = [
    "HistogramValue",
    "MetricRecord",
    "OTLPReceiver",
    "ReceivedRequest",
    "SummaryValue",
    "any_value",
    "attributes_dict",
]

ExportMetricsServiceRequest = metrics_service_pb2.ExportMetricsServiceRequest
ExportMetricsServiceResponse = metrics_service_pb2.ExportMetricsServiceResponse

_TEMPORALITY = {
    metrics_pb2.AGGREGATION_TEMPORALITY_UNSPECIFIED: "unspecified",
    metrics_pb2.AGGREGATION_TEMPORALITY_DELTA: "delta",
    metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE: "cumulative",
}

#: Upper bound for any single wait inside the receiver (slow-answer mode, shutdown).
_MAX_WAIT = 30.0


# --------------------------------------------------------------------------- decoding helpers


def any_value(value: common_pb2.AnyValue) -> Any:
    """Decode an OTLP ``AnyValue`` into a plain Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_dict(attributes: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    """Decode repeated ``KeyValue`` attributes into a dict."""
    return {kv.key: any_value(kv.value) for kv in attributes}


class HistogramValue(NamedTuple):
    count: int
    sum: float | None
    bucket_counts: list[int]
    explicit_bounds: list[float]
    min: float | None
    max: float | None


class SummaryValue(NamedTuple):
    count: int
    sum: float
    quantiles: dict[float, float]


class MetricRecord(NamedTuple):
    """One metric of one request, flattened."""

    resource: dict[str, Any]
    scope: str
    name: str
    unit: str
    kind: str  # 'sum', 'gauge', 'histogram', 'exponential_histogram', 'summary'
    is_monotonic: bool | None  # only for sums
    temporality: str | None  # 'cumulative' / 'delta' / 'unspecified'; None for gauges and summaries
    points: list[tuple[dict[str, Any], Any]]  # (attributes, value)
    description: str = ""
    scope_version: str = ""

    @property
    def aggregation_temporality(self) -> str | None:
        return self.temporality

    def value(self, **attributes: Any) -> Any:
        """The value of the single point whose attributes include ``attributes``."""
        matches = [v for a, v in self.points if all(a.get(k) == want for k, want in attributes.items())]
        if len(matches) != 1:
            raise LookupError(f"{self.name}: {len(matches)} points match {attributes!r}: {self.points!r}")
        return matches[0]


def _number(point: metrics_pb2.NumberDataPoint) -> int | float | None:
    kind = point.WhichOneof("value")
    return None if kind is None else getattr(point, kind)


def flatten(request: ExportMetricsServiceRequest) -> list[MetricRecord]:
    """Flatten one export request into :class:`MetricRecord` rows."""
    rows: list[MetricRecord] = []
    for rm in request.resource_metrics:
        resource = attributes_dict(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                data = m.WhichOneof("data")
                monotonic: bool | None = None
                temporality: str | None = None
                points: list[tuple[dict[str, Any], Any]] = []
                if data == "sum":
                    monotonic = m.sum.is_monotonic
                    temporality = _TEMPORALITY.get(m.sum.aggregation_temporality, "unspecified")
                    points = [(attributes_dict(p.attributes), _number(p)) for p in m.sum.data_points]
                elif data == "gauge":
                    points = [(attributes_dict(p.attributes), _number(p)) for p in m.gauge.data_points]
                elif data == "histogram":
                    temporality = _TEMPORALITY.get(m.histogram.aggregation_temporality, "unspecified")
                    points = [
                        (
                            attributes_dict(p.attributes),
                            HistogramValue(
                                p.count,
                                p.sum if p.HasField("sum") else None,
                                list(p.bucket_counts),
                                list(p.explicit_bounds),
                                p.min if p.HasField("min") else None,
                                p.max if p.HasField("max") else None,
                            ),
                        )
                        for p in m.histogram.data_points
                    ]
                elif data == "exponential_histogram":
                    temporality = _TEMPORALITY.get(m.exponential_histogram.aggregation_temporality, "unspecified")
                    points = [
                        (
                            attributes_dict(p.attributes),
                            HistogramValue(
                                p.count,
                                p.sum if p.HasField("sum") else None,
                                [],
                                [],
                                p.min if p.HasField("min") else None,
                                p.max if p.HasField("max") else None,
                            ),
                        )
                        for p in m.exponential_histogram.data_points
                    ]
                elif data == "summary":
                    points = [
                        (
                            attributes_dict(p.attributes),
                            SummaryValue(p.count, p.sum, {q.quantile: q.value for q in p.quantile_values}),
                        )
                        for p in m.summary.data_points
                    ]
                rows.append(
                    MetricRecord(
                        resource=resource,
                        scope=sm.scope.name,
                        name=m.name,
                        unit=m.unit,
                        kind=data or "none",
                        is_monotonic=monotonic,
                        temporality=temporality,
                        points=points,
                        description=m.description,
                        scope_version=sm.scope.version,
                    )
                )
    return rows


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class ReceivedRequest:
    """One export attempt that reached the receiver."""

    protocol: str  # 'grpc' or 'http'
    headers: dict[str, str]  # lower-cased keys (gRPC metadata or HTTP headers)
    request: ExportMetricsServiceRequest | None  # None when the body could not be decoded
    accepted: bool  # False when the receiver answered with a failure
    status: str  # 'OK', a gRPC status name, or the HTTP status code as text
    path: str = ""
    content_type: str = ""
    content_encoding: str = ""
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class _FailurePlan:
    remaining: int | None = 0  # None = fail until told otherwise
    grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    http_status: int = 503
    retry_after: int | None = None
    message: str = "test receiver told to fail"


class OTLPReceiver:
    """gRPC + HTTP OTLP metrics receiver on free loopback ports. Thread-safe."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        grpc_enabled: bool = True,
        http_enabled: bool = True,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        max_workers: int = 4,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the test receiver only listens on loopback addresses")
        self._host = host
        self._grpc_enabled = grpc_enabled
        self._http_enabled = http_enabled
        self._tls = (tls_cert_file, tls_key_file) if tls_cert_file and tls_key_file else None
        self._max_workers = max_workers
        self._cond = threading.Condition()
        self._received: list[ReceivedRequest] = []
        self._failure = _FailurePlan()
        self._delay = 0.0
        self._stopping = threading.Event()
        self._grpc_server: grpc.Server | None = None
        self._http_server: http.server.ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self.grpc_port: int | None = None
        self.http_port: int | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> OTLPReceiver:
        if self._grpc_server or self._http_server:
            raise RuntimeError("already started")
        self._stopping.clear()
        try:
            if self._grpc_enabled:
                self._start_grpc()
            if self._http_enabled:
                self._start_http()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=0.5).wait(5)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None
        if self._http_thread is not None:
            self._http_thread.join(5)
            self._http_thread = None

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def scheme(self) -> str:
        return "https" if self._tls else "http"

    @property
    def _url_host(self) -> str:
        return f"[{self._host}]" if ":" in self._host else self._host

    @property
    def grpc_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS): what OTEL_EXPORTER_OTLP_ENDPOINT takes for gRPC."""
        if self.grpc_port is None:
            raise RuntimeError("gRPC side not started")
        return f"{self.scheme}://{self._url_host}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: the base URL; exporters append ``/v1/metrics``."""
        if self.http_port is None:
            raise RuntimeError("HTTP side not started")
        return f"{self.scheme}://{self._url_host}:{self.http_port}"

    @property
    def http_metrics_url(self) -> str:
        """The full signal URL, what OTEL_EXPORTER_OTLP_METRICS_ENDPOINT takes for HTTP."""
        return self.http_endpoint + "/v1/metrics"

    # ---------------------------------------------------------------- behaviour control

    def fail_next(
        self,
        count: int | None = 1,
        *,
        grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        http_status: int = 503,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``count`` requests (None = all, until :meth:`succeed`) with a failure.

        The defaults (UNAVAILABLE / 503) are retryable per the OTLP specification; pass e.g.
        ``grpc.StatusCode.INVALID_ARGUMENT`` / 400 for a permanent error.
        """
        with self._cond:
            self._failure = _FailurePlan(count, grpc_code, http_status, retry_after)

    def fail_always(self, **kwargs: Any) -> None:
        self.fail_next(None, **kwargs)

    def succeed(self) -> None:
        """Stop failing and stop delaying."""
        with self._cond:
            self._failure = _FailurePlan()
            self._delay = 0.0

    def set_delay(self, seconds: float) -> None:
        """Answer every request after ``seconds`` (bounded; cut short by :meth:`stop`)."""
        with self._cond:
            self._delay = max(0.0, min(float(seconds), _MAX_WAIT))

    def clear(self) -> None:
        with self._cond:
            self._received.clear()

    # ---------------------------------------------------------------- inspection

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every attempt that reached the receiver, accepted or failed, oldest first."""
        with self._cond:
            return list(self._received)

    @property
    def requests(self) -> list[ExportMetricsServiceRequest]:
        """The accepted, decoded export requests, oldest first."""
        with self._cond:
            return [r.request for r in self._received if r.accepted and r.request is not None]

    @property
    def headers(self) -> list[dict[str, str]]:
        """Headers / metadata of every attempt, oldest first."""
        with self._cond:
            return [dict(r.headers) for r in self._received]

    def metrics(self) -> list[MetricRecord]:
        """All metrics of all accepted requests, flattened, in arrival order."""
        rows: list[MetricRecord] = []
        for request in self.requests:
            rows.extend(flatten(request))
        return rows

    def metric_names(self) -> set[str]:
        return {m.name for m in self.metrics()}

    def latest(self, name: str) -> MetricRecord:
        """The most recently received record of metric ``name``."""
        for m in reversed(self.metrics()):
            if m.name == name:
                return m
        raise LookupError(f"no metric {name!r} received; have {sorted(self.metric_names())}")

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy and return its value; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + min(timeout, 10 * _MAX_WAIT)
        with self._cond:
            while True:
                self._cond.release()
                try:
                    result = predicate()
                finally:
                    self._cond.acquire()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"condition not met within {timeout}s; {len(self._received)} request(s) received"
                    )
                self._cond.wait(min(left, 0.1))

    def wait_for_requests(self, count: int = 1, timeout: float = 10.0, *, accepted_only: bool = True) -> None:
        def enough() -> bool:
            if accepted_only:
                return len(self.requests) >= count
            return len(self.received) >= count

        self.wait_for(enough, timeout)

    # ---------------------------------------------------------------- internals

    def _record(self, entry: ReceivedRequest) -> None:
        with self._cond:
            self._received.append(entry)
            self._cond.notify_all()

    def _take_failure(self) -> _FailurePlan | None:
        """Decide, atomically, whether this request fails (and count it against ``fail_next``)."""
        with self._cond:
            plan = self._failure
            if plan.remaining is None:
                return plan
            if plan.remaining > 0:
                plan.remaining -= 1
                return plan
            return None

    def _wait_delay(self) -> None:
        with self._cond:
            delay = self._delay
        if delay > 0:
            self._stopping.wait(delay)

    def _start_grpc(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="otlp-grpc"))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsServicer(self), server)
        address = f"{self._url_host}:0"
        if self._tls:
            cert_file, key_file = self._tls
            with open(cert_file, "rb") as f:
                cert = f.read()
            with open(key_file, "rb") as f:
                key = f.read()
            port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            port = server.add_insecure_port(address)
        if not port:
            raise OSError(f"could not bind gRPC on {address}")
        server.start()
        self._grpc_server = server
        self.grpc_port = port

    def _start_http(self) -> None:
        receiver = self

        class Handler(_HTTPHandler):
            owner = receiver

        server_cls = _HTTPServerV6 if ":" in self._host else http.server.ThreadingHTTPServer
        server = server_cls((self._host, 0), Handler)
        server.daemon_threads = True
        if self._tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self._tls)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._http_server = server
        self.http_port = server.server_address[1]
        self._http_thread = threading.Thread(target=server.serve_forever, name="otlp-http", daemon=True)
        self._http_thread.start()


class _HTTPServerV6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, owner: OTLPReceiver) -> None:
        self._owner = owner

    def Export(self, request, context):  # noqa: N802 - the generated service's method name
        owner = self._owner
        headers = {k.lower(): (v if isinstance(v, str) else v.decode("latin-1")) for k, v in context.invocation_metadata()}
        owner._wait_delay()
        plan = owner._take_failure()
        copy = ExportMetricsServiceRequest()
        copy.CopyFrom(request)
        if plan is not None:
            owner._record(
                ReceivedRequest("grpc", headers, copy, False, plan.grpc_code.name, "MetricsService/Export")
            )
            context.abort(plan.grpc_code, plan.message)
        owner._record(ReceivedRequest("grpc", headers, copy, True, "OK", "MetricsService/Export"))
        return ExportMetricsServiceResponse()


class _HTTPHandler(http.server.BaseHTTPRequestHandler):
    owner: OTLPReceiver
    protocol_version = "HTTP/1.1"
    server_version = "otlp-test-receiver"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/x-protobuf", extra=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:  # noqa: N802
        owner = self.owner
        path = self.path.split("?", 1)[0]
        body = self._read_body()
        if path != "/v1/metrics":
            self._send(404, b"not found", "text/plain")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        encoding = headers.get("content-encoding", "").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding not in ("", "identity"):
                raise ValueError(f"unsupported Content-Encoding {encoding!r}")
            request = ExportMetricsServiceRequest()
            if content_type == "application/x-protobuf":
                request.ParseFromString(body)
            elif content_type == "application/json":
                json_format.Parse(body.decode("utf-8"), request, ignore_unknown_fields=True)
            else:
                owner._record(ReceivedRequest("http", headers, None, False, "415", path, content_type, encoding))
                self._send(415, b"unsupported content type", "text/plain")
                return
        except Exception as e:  # noqa: BLE001 - any decoding error is the client's
            owner._record(ReceivedRequest("http", headers, None, False, "400", path, content_type, encoding))
            self._send(400, f"cannot decode request: {e}".encode(), "text/plain")
            return
        owner._wait_delay()
        plan = owner._take_failure()
        if plan is not None:
            owner._record(ReceivedRequest("http", headers, request, False, str(plan.http_status), path, content_type, encoding))
            extra = {"Retry-After": str(plan.retry_after)} if plan.retry_after is not None else None
            self._send(plan.http_status, plan.message.encode(), "text/plain", extra)
            return
        owner._record(ReceivedRequest("http", headers, request, True, "200", path, content_type, encoding))
        response = ExportMetricsServiceResponse()
        if content_type == "application/json":
            self._send(200, json_format.MessageToJson(response).encode(), "application/json")
        else:
            self._send(200, response.SerializeToString())
