"""The OpenTelemetry SDK environment: exporter selection, the Prometheus host/port, OTEL_SDK_DISABLED,
the OTLP endpoint rules and the one start-up line naming every exporter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import FIXTURES, ROOT, fetch, free_port, wait_for_http
from logfmt_strict import check_promslog, parse_logfmt
from otlp_receiver import OTLPReceiver
from otel_bare_metal.exposition import otelenv
from otel_bare_metal.exposition.otlp import otlp_endpoint, protocol, protocol_warnings, redact


@pytest.mark.parametrize("value,expected,warned", [
    (None, {"prometheus"}, False),
    ("", {"prometheus"}, False),                      # empty is unset
    ("prometheus", {"prometheus"}, False),
    ("otlp", {"otlp"}, False),
    (" Prometheus , OTLP,console ", {"prometheus", "otlp", "console"}, False),
    ("none", set(), False),
    ("none,otlp", {"otlp"}, False),
    ("otlp,zipkin", {"otlp"}, True),                  # unknown: warned and ignored
    ("logging", {"prometheus"}, True),                # deprecated: new implementations SHOULD NOT support it
    ("zipkin", {"prometheus"}, True),                 # nothing known left: the setting is ignored
])
def test_metrics_exporter_selection_follows_the_specification(value, expected, warned):
    environ = {} if value is None else {"OTEL_METRICS_EXPORTER": value}
    chosen, warnings = otelenv.metrics_exporters(environ)
    assert set(chosen) == expected and bool(warnings) == warned


def test_endpoint_variables_never_switch_otlp_on():
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"}
    assert otelenv.metrics_exporters(environ) == (frozenset({"prometheus"}), [])


@pytest.mark.parametrize("value,disabled,warned", [
    (None, False, False), ("", False, False), ("false", False, False), ("FALSE", False, False),
    ("true", True, False), ("True", True, False), ("TRUE", True, False),
    ("1", False, True), ("yes", False, True),      # only "true" is true; anything else is a warning and false
])
def test_sdk_disabled_is_a_specification_boolean(value, disabled, warned):
    environ = {} if value is None else {"OTEL_SDK_DISABLED": value}
    result, warnings = otelenv.sdk_disabled(environ)
    assert result is disabled and bool(warnings) == warned


@pytest.mark.parametrize("host,port,address,warned", [
    (None, None, ":9464", False),
    (None, "19466", ":19466", False),
    ("127.0.0.1", None, "127.0.0.1:9464", False),
    ("127.0.0.1", "19466", "127.0.0.1:19466", False),
    ("::1", "19466", "[::1]:19466", False),
    ("[::1]", "19466", "[::1]:19466", False),
    ("", "", ":9464", False),
    (None, "http", ":9464", True),
    (None, "70000", ":9464", True),
    (None, "-1", ":9464", True),
])
def test_prometheus_host_and_port(host, port, address, warned):
    environ = {k: v for k, v in (("OTEL_EXPORTER_PROMETHEUS_HOST", host), ("OTEL_EXPORTER_PROMETHEUS_PORT", port)) if v is not None}
    result, warnings = otelenv.prometheus_listen_address(environ)
    assert result == address and bool(warnings) == warned


@pytest.mark.parametrize("proto,environ,flag,expected", [
    ("http/protobuf", {}, "", "http://localhost:4318/v1/metrics"),
    ("grpc", {}, "", "http://localhost:4317"),
    ("http/protobuf", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "", "http://c:4318/v1/metrics"),
    ("http/protobuf", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/base/"}, "", "http://c:4318/base/v1/metrics"),
    ("grpc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, "", "http://c:4317"),
    ("http/protobuf", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:1", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:2/custom"}, "",
     "http://m:2/custom"),                             # the signal variable is used as given
    ("http/protobuf", {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": ""}, "", "http://localhost:4318/v1/metrics"),
    ("http/protobuf", {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:2/custom"}, "http://f:3", "http://f:3/v1/metrics"),
    ("grpc", {}, "http://f:3", "http://f:3"),
])
def test_otlp_endpoint_rules(proto, environ, flag, expected):
    assert otlp_endpoint(environ, proto, flag) == expected


def test_credentials_never_reach_the_log_line():
    assert redact("https://user:secret@collector:4318/v1/metrics") == "https://collector:4318/v1/metrics"
    assert redact("http://[::1]:4317") == "http://[::1]:4317"


class Run:
    """The real command with an environment; ``lines`` are its stderr log records."""

    def __init__(self, env: dict[str, str], *args: str):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "otel_bare_metal", f"--path.procfs={FIXTURES / 'proc'}",
             f"--path.rootfs={FIXTURES / 'rootfs'}", *args],
            env={**clean, "PYTHONPATH": str(ROOT), "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "", **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self) -> tuple[str, list[dict]]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        assert self.proc.returncode == 0, err
        return out, [check_promslog(parse_logfmt(line)) for line in err.splitlines()]


def test_prometheus_port_variable_sets_the_listen_address():
    port = free_port()
    run = Run({"OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port)})
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=run.proc)
        assert fetch(f"http://127.0.0.1:{port}/metrics")[0] == 200
    finally:
        _, records = run.stop()
    assert any(r["msg"] == "listening" and r["address"] == f"127.0.0.1:{port}" for r in records)


def test_the_flag_wins_over_the_prometheus_variables():
    flag_port, env_port = free_port(), free_port()
    run = Run({"OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT": str(env_port)},
              f"--web.listen-address=127.0.0.1:{flag_port}")
    try:
        wait_for_http(f"http://127.0.0.1:{flag_port}/healthz", proc=run.proc)
        with pytest.raises(OSError):
            fetch(f"http://127.0.0.1:{env_port}/healthz", timeout=2)
    finally:
        run.stop()


def _exporters_line(records: list[dict]) -> dict:
    lines = [r for r in records if r["msg"] == "metrics exporters"]
    assert len(lines) == 1, records
    return lines[0]


def test_endpoint_alone_configures_but_does_not_push():
    with OTLPReceiver() as rx:
        port = free_port()
        run = Run({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.http_endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "100"},
                  f"--web.listen-address=127.0.0.1:{port}")
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=run.proc)
            assert fetch(f"http://127.0.0.1:{port}/metrics")[0] == 200
            time.sleep(1.5)  # fifteen push intervals, had OTLP been on
        finally:
            _, records = run.stop()  # SIGTERM: an active push reader would flush now
        assert rx.received == []
    line = _exporters_line(records)
    assert line["exporters"] == "prometheus" and "otlp" not in line


def test_one_line_names_every_exporter_and_where_it_sends():
    with OTLPReceiver() as rx:
        port = free_port()
        run = Run({"OTEL_METRICS_EXPORTER": "prometheus,otlp,console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": rx.grpc_endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "300"},
                  f"--web.listen-address=127.0.0.1:{port}")
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=run.proc)
            assert rx.wait_for(lambda: bool(rx.metrics()), 15)
        finally:
            out, records = run.stop()
    line = _exporters_line(records)
    assert line["exporters"] == "prometheus,otlp,console"
    assert line["prometheus"] == f"pull http://127.0.0.1:{port}/metrics"
    assert line["otlp"] == f"grpc {rx.grpc_endpoint} every 0.3s"
    assert line["console"] == "stdout every 0.3s"
    exports = [json.loads(x) for x in out.splitlines()]  # console: one JSON document per line
    names = {m["name"] for e in exports for rm in e["resource_metrics"] for sm in rm["scope_metrics"] for m in sm["metrics"]}
    assert "system.cpu.time" in names


def test_console_only_prints_json_lines_and_turns_the_page_off():
    port = free_port()
    run = Run({"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "200"}, f"--web.listen-address=127.0.0.1:{port}")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=run.proc)
        assert fetch(f"http://127.0.0.1:{port}/metrics")[0] == 404
    finally:
        out, records = run.stop()  # the final flush prints at least one export
    assert out and all(json.loads(x)["resource_metrics"] for x in out.splitlines())
    assert _exporters_line(records)["console"] == "stdout every 0.2s"


def test_sdk_disabled_logs_one_line_and_serves_no_metrics():
    with OTLPReceiver() as rx:
        port = free_port()
        run = Run({"OTEL_SDK_DISABLED": "true", "OTEL_METRICS_EXPORTER": "prometheus,otlp",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": rx.http_endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "100"},
                  f"--web.listen-address=127.0.0.1:{port}", "--hdhomerun.device=127.0.0.1:9")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base + "/healthz", proc=run.proc)
            assert fetch(base + "/healthz")[0] == 200, "the process runs and says it is healthy"
            status, _, body = fetch(base + "/metrics")
            assert status == 404 and b"OTEL_SDK_DISABLED" in body
            assert fetch(base + "/probe?target=127.0.0.1")[0] == 404
            time.sleep(0.5)
        finally:
            _, records = run.stop()
        assert rx.received == []
    mentions = [r for r in records if "OTEL_SDK_DISABLED" in r.values()]
    assert len(mentions) == 1 and mentions[0]["level"] == "WARN"
    assert not [r for r in records if r["msg"] == "metrics exporters"]
    assert not [r for r in records if "HDHomeRun" in r["msg"]], "nothing is collected"


def test_otlp_endpoint_flag_without_otlp_selected_is_a_warning():
    port = free_port()
    run = Run({}, f"--web.listen-address=127.0.0.1:{port}", "--otlp.endpoint=http://127.0.0.1:1")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=run.proc)
    finally:
        _, records = run.stop()
    assert any(r["level"] == "WARN" and "--otlp.endpoint" in r["msg"] for r in records)


@pytest.mark.parametrize("environ,expected,warned", [
    ({}, "http/protobuf", False),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc", False),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"}, "http/protobuf", False),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "smoke"}, "http/protobuf", True),            # unknown Enum value: warned, ignored
    ({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc", True),
])
def test_protocol_variables_follow_the_enum_rule(environ, expected, warned):
    assert protocol(environ) == expected and bool(protocol_warnings(environ)) == warned


def test_protocol_flag_wins_and_a_bad_flag_is_an_error():
    from otel_bare_metal.exposition.otlp import OTLPConfigError

    assert protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "grpc") == "grpc"
    with pytest.raises(OTLPConfigError, match="--otlp.protocol"):
        protocol({}, "smoke")
