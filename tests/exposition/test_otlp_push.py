"""OTLP push from the real command to a real receiver (gRPC and HTTP) built from opentelemetry-proto."""

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import FIXTURES, ROOT, fetch, free_port, wait_for_http
from otlp_receiver import OTLPReceiver

BASE_ENV = {
    "OTEL_METRICS_EXPORTER": "prometheus,otlp",  # an endpoint alone never switches OTLP on
    "OTEL_METRIC_EXPORT_INTERVAL": "300",
    "OTEL_METRIC_EXPORT_TIMEOUT": "2000",
    "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test,team=tv",
    # requests lets these override OTEL_EXPORTER_OTLP_CERTIFICATE; keep them out of the way
    "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "",
}


class Exporter:
    def __init__(self, env, *args):
        self.port = free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{self.port}",
             f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}", *args],
            env={**clean, "PYTHONPATH": str(ROOT), **BASE_ENV, **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for_http(self.base + "/healthz", proc=self.proc)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return code, self.proc.stderr.read()


def by_name(receiver):
    latest = {}
    for record in receiver.metrics():
        latest[record.name] = record
    return latest


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_cpu_and_filesystem_arrive_with_resource_while_metrics_page_serves(protocol):
    with OTLPReceiver() as rx:
        endpoint = rx.grpc_endpoint if protocol == "grpc" else rx.http_endpoint
        exp = Exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=tv"})
        try:
            assert rx.wait_for(lambda: {"system.cpu.time", "system.filesystem.usage"} <= {m.name for m in rx.metrics()}, 15)
            status, _, body = fetch(exp.base + "/metrics")
            assert status == 200 and b"system_cpu_time_seconds_total" in body
        finally:
            code, _ = exp.stop()
        assert code == 0
        metrics = by_name(rx)
        cpu = metrics["system.cpu.time"]
        assert cpu.unit == "s" and cpu.kind == "sum" and cpu.is_monotonic and cpu.temporality == "cumulative"
        hz = os.sysconf("SC_CLK_TCK")
        assert cpu.value(**{"cpu.logical_number": 0, "cpu.mode": "user"}) == 1132 / hz
        assert {p[0]["cpu.logical_number"] for p in cpu.points} == {0, 1, 3}
        usage = metrics["system.filesystem.usage"]
        assert usage.unit == "By" and usage.kind == "sum" and not usage.is_monotonic
        assert {p[0]["system.filesystem.mountpoint"] for p in usage.points} >= {"/", "/data", "/mnt/with space"}
        assert metrics["system.cpu.logical.count"].points[0][1] == 3, "OTLP keeps the convention name"
        resource = cpu.resource
        assert resource["service.name"] == "otel-bare-metal"
        assert resource["host.name"] and resource["deployment.environment.name"] == "test" and resource["team"] == "tv"
        assert any(h.get("x-tenant") == "tv" for h in rx.headers)


def test_delta_temporality_when_asked():
    with OTLPReceiver() as rx:
        exp = Exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.http_endpoint,
                        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"})
        try:
            assert rx.wait_for(lambda: any(m.name == "system.cpu.time" for m in rx.metrics()), 15)
        finally:
            exp.stop()
        assert by_name(rx)["system.cpu.time"].temporality == "delta"


def test_service_name_and_k8s_identity_from_environment():
    with OTLPReceiver() as rx:
        exp = Exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.http_endpoint, "OTEL_SERVICE_NAME": "edge-agent",
                        "K8S_NODE_NAME": "node-7", "K8S_POD_NAME": "obm-abc"})
        try:
            assert rx.wait_for(lambda: bool(rx.metrics()), 15)
            status, _, body = fetch(exp.base + "/metrics")
        finally:
            exp.stop()
        resource = rx.metrics()[0].resource
        assert (resource["service.name"], resource["k8s.node.name"], resource["k8s.pod.name"]) == ("edge-agent", "node-7", "obm-abc")
        assert b'k8s_node_name="node-7"' in body and b'service_name="edge-agent"' in body, "same resource in target_info"


def test_unreachable_collector_never_blocks_the_metrics_page():
    dead = f"http://127.0.0.1:{free_port()}"
    exp = Exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": dead, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    try:
        deadline = time.monotonic() + 4
        scrapes = 0
        while time.monotonic() < deadline:
            start = time.monotonic()
            status, _, _ = fetch(exp.base + "/metrics")
            assert status == 200 and time.monotonic() - start < 1.0
            scrapes += 1
            time.sleep(0.2)
        assert exp.proc.poll() is None, "the process stays up"
    finally:
        code, stderr = exp.stop(timeout=15)
    assert code == 0
    failures = [line for line in stderr.splitlines() if "logger=opentelemetry" in line and "level=WARN" in line]
    assert len(failures) <= 6, f"exporter failures must be rate-limited, got {len(failures)} lines:\n{stderr}"


def test_sigterm_flushes_one_last_export_and_exits_0():
    with OTLPReceiver() as rx:
        exp = Exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.http_endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "3600000"})
        time.sleep(0.5)
        assert rx.metrics() == [], "nothing is pushed before the first interval"
        start = time.monotonic()
        code, _ = exp.stop()
        assert code == 0 and time.monotonic() - start < 5
        assert any(m.name == "system.cpu.time" for m in rx.metrics()), "the final flush arrived"


def test_otlp_only_turns_the_metrics_page_off():
    with OTLPReceiver() as rx:
        exp = Exporter({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": rx.http_endpoint})
        try:
            assert fetch(exp.base + "/metrics")[0] == 404
            assert fetch(exp.base + "/healthz")[0] == 200
            assert rx.wait_for(lambda: bool(rx.metrics()), 15)
        finally:
            exp.stop()


@pytest.mark.parametrize("env,message", [
    ({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, "--otlp.protocol"),
])
def test_bad_otlp_settings_are_one_line(env, message):
    result = subprocess.run([sys.executable, "-m", "otel_bare_metal", "--otlp.protocol=smoke"], capture_output=True,
                            text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
