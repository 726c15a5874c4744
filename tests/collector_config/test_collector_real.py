"""collector-config/ on the real OpenTelemetry Collector (our distribution, otelcol/, v0.161.0).

Every file validates and starts with a clean log; then data goes end to end through the real
Collector into real sinks, read back: pull, OTLP push over gRPC and HTTP, the HDHomeRun fleet
through /probe to the simulator, and remote write into Debian's Prometheus.  All on loopback,
on free ports (collector_support.loopback, which is tested here too).
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from collector_support import (CONFIG_DIR, K8S_POD_LABELS, go_peer, load, loopback, running_collector,
                               running_prometheus, wait_for, warnings_in)
from helpers import FIXTURES, fetch, free_port, running_exporter, samples
from otel_bare_metal.hdhr.simulator import Simulator
from test_collector_config import KNOWN

pytestmark = pytest.mark.peers  # main interpreter only (scripts/test)

FILES = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
# Every ${env:...} placeholder the files read, filled as a user would.
PLACEHOLDERS = {
    "OTLP_BACKEND_ENDPOINT": "127.0.0.1:4317",
    "K8S_NODE_NAME": "node-a",
    "K8S_CLUSTER_NAME": "edge-1",
    "MY_POD_IP": "127.0.0.1",
    "HDHOMERUN_EXPORTER_ADDRESS": "127.0.0.1:9464",
    "PROMETHEUS_REMOTE_WRITE_URL": "http://127.0.0.1:9090/api/v1/write",
}
FIXTURE_ARGS = (f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}")
IDLE_CPU0 = 113117.18  # tests/fixtures/proc/stat, cpu0 idle, in seconds


@pytest.fixture(scope="session")
def otelcol() -> str:
    return go_peer("otelcol")


def test_our_collector_has_every_component_the_configs_may_use(otelcol):
    done = subprocess.run([otelcol, "components"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = yaml.safe_load(done.stdout)
    have = {kind: {c["name"] for c in listed.get(kind) or []} for kind in KNOWN}
    for kind, names in KNOWN.items():
        assert names <= have[kind], f"{kind} missing from otelcol/manifest.yaml: {sorted(names - have[kind])}"
    assert listed["buildinfo"]["version"] == "0.161.0"


@pytest.mark.parametrize("name", FILES)
def test_validate(otelcol, name):
    done = subprocess.run([otelcol, "validate", f"--config=file:{CONFIG_DIR / name}"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", **PLACEHOLDERS})
    assert done.returncode == 0, done.stdout + done.stderr
    assert not warnings_in(done.stdout + done.stderr), done.stdout + done.stderr


def test_validate_catches_what_we_removed(otelcol, tmp_path):
    """validate is a real check: the resource_detection processor (not in our distribution) and
    a pipeline naming an undefined exporter are both refused, by name."""
    cfg = load("pull.yaml")
    cfg["processors"]["resource_detection"] = {"detectors": ["env"]}
    cfg["service"]["pipelines"]["metrics"]["processors"].append("resource_detection")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([otelcol, "validate", f"--config=file:{bad}"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **PLACEHOLDERS})
    assert done.returncode != 0 and "resource_detection" in done.stdout + done.stderr


@pytest.mark.parametrize("name", FILES)
def test_starts_with_a_clean_log(otelcol, sink, tmp_path, name):
    """Runs as shipped (addresses on loopback, forwarding to a live sink); no warning, no
    deprecation and nothing to rewrite in its log, at any level (it logs at debug here)."""
    cfg, ports = loopback(load(name), targets=[f"127.0.0.1:{free_port()}"], otlp_sink=sink.otlp,
                          remote_write=f"http://127.0.0.1:{free_port()}/api/v1/write",
                          k8s_targets=[(f"127.0.0.1:{free_port()}", K8S_POD_LABELS)])
    cfg["service"]["telemetry"]["logs"] = {"level": "debug"}
    with running_collector(cfg, tmp_path, ports, env=PLACEHOLDERS) as collector:
        pass
    log = collector.log()
    assert "Everything is ready" in log
    assert not warnings_in(log), "\n".join(warnings_in(log))


# ----------------------------------------------------------------------------- end to end

SINK = {
    "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
    # a test reader: every resource attribute as a label, to see what arrived; and the OTLP
    # itself, as JSON lines, to see resource attributes and schema URLs exactly
    "exporters": {"prometheus": {"endpoint": "127.0.0.1:0", "resource_constant_labels": {"included": ["*"]}},
                  "file": {"path": "sink.jsonl"}},
    "service": {"pipelines": {"metrics": {"receivers": ["otlp"], "exporters": ["prometheus", "file"]}}},
}


@pytest.fixture(scope="module")
def sink(otelcol, tmp_path_factory):
    """A second real Collector that receives OTLP and serves it on its prometheus exporter (and
    writes it to a file exporter's JSON lines)."""
    tmp = tmp_path_factory.mktemp("sink")
    cfg, ports = loopback(SINK)
    cfg["exporters"]["file"]["path"] = str(tmp / "sink.jsonl")
    with running_collector(cfg, tmp, ports, name="sink") as collector:
        collector.otlp = f"127.0.0.1:{ports['otlp/grpc']}"
        collector.jsonl = tmp / "sink.jsonl"
        yield collector


def otlp_resources(sink, **wanted: str) -> list[dict]:
    """Every resourceMetrics the sink's file exporter wrote whose attributes include ``wanted``,
    as {"attributes": {key: value}, "schemaUrl": …, "scopes": [scope schema URLs]}."""
    out = []
    if not sink.jsonl.exists():
        return out
    for line in sink.jsonl.read_text(encoding="utf-8").splitlines():
        for rm in json.loads(line).get("resourceMetrics", []):
            attrs = {a["key"]: next(iter(a["value"].values()), "") for a in rm.get("resource", {}).get("attributes", [])}
            if all(attrs.get(k) == v for k, v in wanted.items()):
                out.append({"attributes": attrs, "schemaUrl": rm.get("schemaUrl", ""),
                            "scopes": [sm.get("schemaUrl", "") for sm in rm.get("scopeMetrics", [])]})
    return out


def series(text: str, name: str, **labels: str) -> dict[tuple, float]:
    return {k: v for k, v in samples(text).items()
            if k[0] == name and all(dict(k[1]).get(label) == value for label, value in labels.items())}


def one(text: str, name: str, **labels: str) -> tuple[dict[str, str], float]:
    found = series(text, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {found or 'no series'}"
    ((key, value),) = found.items()
    return dict(key[1]), value


def test_pull(sink, tmp_path):
    env = {"OTEL_RESOURCE_ATTRIBUTES": "host.name=pulled-host"}
    with running_exporter(*FIXTURE_ARGS, env=env) as base:
        cfg, ports = loopback(load("pull.yaml"), targets=[base.removeprefix("http://")], otlp_sink=sink.otlp,
                              interval="1s")
        with running_collector(cfg, tmp_path, ports):
            text = wait_for(lambda: series(sink.scrape(), "system_cpu_time_seconds_total", instance="pulled-host")
                            and sink.scrape(), what="pulled series at the sink")
    labels, value = one(text, "system_cpu_time_seconds_total", instance="pulled-host", cpu_logical_number="0",
                        cpu_mode="idle")
    assert value == IDLE_CPU0
    assert labels["job"] == "otel-bare-metal" and labels["host_name"] == "pulled-host"
    # instance = host.name (restored from target_info's host_name); SDK details deleted
    assert labels["service_instance_id"] == "pulled-host" and "telemetry_sdk_name" not in labels
    assert one(text, "up", instance="pulled-host")[1] == 1


def test_pull_kubernetes_relabelling(sink, tmp_path):
    """The pod-discovery relabelling as shipped, on the labels Kubernetes discovery would give:
    a running pod of the chart on this node is scraped with instance = node name; a pending pod
    is not scraped."""
    env = {"OTEL_RESOURCE_ATTRIBUTES": "host.name=pod-host,k8s.node.name=node-a"}
    pending = {**K8S_POD_LABELS, "__meta_kubernetes_pod_phase": "Pending", "__meta_kubernetes_pod_node_name": "node-p"}
    with running_exporter(*FIXTURE_ARGS, env=env) as base:
        cfg, ports = loopback(load("pull-kubernetes.yaml"), otlp_sink=sink.otlp, interval="1s",
                              k8s_targets=[(base.removeprefix("http://"), K8S_POD_LABELS),
                                           (f"127.0.0.1:{free_port()}", pending)])
        assert "kubernetes_sd_configs" not in str(cfg) and "static_configs" in str(cfg)
        with running_collector(cfg, tmp_path, ports, env={"K8S_NODE_NAME": "node-a", "K8S_CLUSTER_NAME": "edge-1"}):
            text = wait_for(lambda: series(sink.scrape(), "up", instance="node-a") and sink.scrape(),
                            what="the pod's series at the sink")
    labels, value = one(text, "system_cpu_time_seconds_total", instance="node-a", cpu_logical_number="0",
                        cpu_mode="idle")
    assert value == IDLE_CPU0 and labels["k8s_cluster_name"] == "edge-1" and labels["k8s_node_name"] == "node-a"
    assert not series(text, "up", instance="node-p"), "the pending pod was scraped"


def test_loopback_substitution_changes_only_addresses():
    shipped = load("pull-kubernetes.yaml")
    cfg, ports = loopback(shipped, otlp_sink="127.0.0.1:1", k8s_targets=[("127.0.0.1:2", K8S_POD_LABELS)])
    job, = cfg["receivers"]["prometheus"]["config"]["scrape_configs"]
    shipped_job, = shipped["receivers"]["prometheus"]["config"]["scrape_configs"]
    assert job["relabel_configs"] == shipped_job["relabel_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:2"], "labels": K8S_POD_LABELS}]
    assert cfg["processors"] == shipped["processors"]
    assert cfg["service"]["pipelines"] == shipped["service"]["pipelines"]
    assert cfg["exporters"]["otlp_grpc"]["endpoint"] == "127.0.0.1:1"
    assert cfg["extensions"]["health_check"]["endpoint"] == f"127.0.0.1:{ports['health_check']}"
    # every label the shipped keep rules look for is one discovery of role pod provides
    for rule in shipped_job["relabel_configs"]:
        for label in rule.get("source_labels", []):
            assert label.startswith("__meta_kubernetes_pod_") or label == "__address__", label


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_push(tmp_path, protocol):
    """mixed-shop.yaml: OTLP push in over gRPC or HTTP, out through the prometheus exporter."""
    cfg, ports = loopback(load("mixed-shop.yaml"), targets=[f"127.0.0.1:{free_port()}"], interval="1s")
    with running_collector(cfg, tmp_path, ports) as collector:
        port = ports["otlp/grpc" if protocol == "grpc" else "otlp/http"]
        env = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
               "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_METRIC_EXPORT_INTERVAL": "500",
               "OTEL_RESOURCE_ATTRIBUTES": "host.name=push-host,deployment.environment.name=test"}
        with running_exporter(*FIXTURE_ARGS, env=env):
            text = wait_for(lambda: series(collector.scrape(), "system_cpu_time_seconds_total", instance="push-host")
                            and collector.scrape(), what="pushed series")
    labels, value = one(text, "system_cpu_time_seconds_total", instance="push-host", cpu_logical_number="0",
                        cpu_mode="idle")
    assert value == IDLE_CPU0
    assert labels["job"] == "otel-bare-metal" and labels["host_name"] == "push-host"
    assert labels["deployment_environment_name"] == "test"
    assert "telemetry_sdk_name" not in labels, "only the allow-listed resource attributes become labels"
    assert one(text, "system_filesystem_utilization_ratio", instance="push-host", system_filesystem_mountpoint="/")


def test_hdhomerun_fleet(sink, tmp_path):
    with Simulator("127.0.0.1", 0, tuners=2) as sim, \
            running_exporter("--no-collector.filesystem", "--no-collector.cpu",
                             "--hdhomerun.allow-target=127.0.0.0/8:*") as base:
        exporter = base.removeprefix("http://")
        cfg, ports = loopback(load("hdhomerun-fleet.yaml"), targets=[sim.address_text], otlp_sink=sink.otlp,
                              interval="1s")
        with running_collector(cfg, tmp_path, ports, env={"HDHOMERUN_EXPORTER_ADDRESS": exporter}):
            text = wait_for(lambda: series(sink.scrape(), "hdhomerun_up", instance=sim.address_text)
                            and sink.scrape(), what="probed tuner series")
    labels, value = one(text, "hdhomerun_up", instance=sim.address_text)
    assert value == 1 and labels["job"] == "hdhomerun" and labels["site"] == "home"
    strength = series(text, "hdhomerun_tuner_signal_strength_ratio", instance=sim.address_text)
    assert len(strength) == 2 and all(0 <= v <= 1 for v in strength.values())
    # the exporter's own resource (host_name, telemetry_sdk_*) does not end up on the tuner
    assert not {"host_name", "telemetry_sdk_name", "service_version"} & set(labels)
    # the exporter's own health job
    assert one(text, "up", job="hdhomerun-exporter", instance=exporter)[1] == 1


PROMETHEUS_RW = """
global:
  scrape_interval: 1s
scrape_configs: []
"""


def test_remote_write_into_prometheus(tmp_path):
    with running_prometheus(tmp_path, PROMETHEUS_RW, "--web.enable-remote-write-receiver") as prom:
        cfg, ports = loopback(load("push.yaml"), remote_write=f"{prom.url}/api/v1/write")
        with running_collector(cfg, tmp_path, ports) as collector:
            env = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports['otlp/grpc']}",
                   "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_RESOURCE_ATTRIBUTES": "host.name=rw-host"}
            with running_exporter(*FIXTURE_ARGS, env=env):
                result = wait_for(lambda: prom.query('system_cpu_time_seconds_total{cpu_mode="idle",cpu_logical_number="0"}'),
                                  what="remote-written series in Prometheus")
        assert not warnings_in(collector.log()), collector.log()
    (sample,) = result
    assert float(sample["value"][1]) == IDLE_CPU0
    assert sample["metric"]["job"] == "otel-bare-metal" and sample["metric"]["instance"] == "rw-host"


# ----------------------------------------------------------------------------- a user's Collector

TEXT_ONLY = ["PrometheusText0.0.4"]
# the receiver's own series about each scrape, and the resource (on both sides)
EXTRA = {"up", "target_info", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
         "scrape_series_added"}


@pytest.mark.parametrize("protocols", ["default", "text"])
@pytest.mark.parametrize("mode", ["otel", "classic"])
def test_a_users_collector_gets_the_names_of_the_page(sink, tmp_path, mode, protocols):
    """pull.yaml as a user runs it: the receiver's default scrape protocols negotiate OpenMetrics
    (our # UNIT lines included); pinned to the text format it reads none. Either way the
    Collector's Prometheus exporter serves exactly the names the /metrics page has, in both naming
    modes, HDHomeRun rates included (no ..._per_second_per_second)."""
    host = f"names-{mode}-{protocols}"
    with Simulator("127.0.0.1", 0, tuners=2, cablecard=True) as sim, \
            running_exporter(*FIXTURE_ARGS, f"--metrics.naming={mode}", f"--hdhomerun.device={sim.address_text}",
                             env={"OTEL_RESOURCE_ATTRIBUTES": f"host.name={host}"}) as base:
        page = {k[0] for k in samples(fetch(base + "/metrics")[2].decode())}
        cfg, ports = loopback(load("pull.yaml"), targets=[base.removeprefix("http://")], otlp_sink=sink.otlp, interval="1s")
        if protocols == "text":
            cfg["receivers"]["prometheus"]["config"]["global"]["scrape_protocols"] = TEXT_ONLY
        else:
            assert "scrape_protocols" not in cfg["receivers"]["prometheus"]["config"]["global"]
        with running_collector(cfg, tmp_path, ports):
            wanted = {"hdhomerun_up", "system_cpu_time_seconds_total" if mode == "otel" else "node_cpu_seconds_total"}
            text = wait_for(lambda: (wanted <= {k[0] for k in series_of(sink.scrape(), host)}) and sink.scrape(),
                            what="the pulled page at the sink")
            text = sink.scrape()  # one more round: every family has arrived
    arrived = {k[0] for k in series_of(text, host)}
    assert arrived - EXTRA == page - EXTRA, (f"only through the Collector: {sorted(arrived - page - EXTRA)}; "
                                             f"missing there: {sorted(page - arrived - EXTRA)}")
    assert not [n for n in arrived if "per_second_per_second" in n]


def series_of(text: str, host: str) -> dict:
    return {k: v for k, v in samples(text).items() if dict(k[1]).get("instance") == host}


def test_resource_attributes_survive_the_scrape_path(sink, tmp_path):
    """Current semantic-convention keys set through OTEL_RESOURCE_ATTRIBUTES arrive under their
    own keys after pull.yaml (the anchored cleanup no longer deletes them); a key nobody knows
    arrives as the receiver gives it."""
    env = {"OTEL_RESOURCE_ATTRIBUTES": "host.name=attr-host,service.namespace=edge,deployment.environment.name=prod,"
                                       "team.name=infra"}
    with running_exporter(*FIXTURE_ARGS, "--no-collector.hdhomerun", env=env) as base:
        cfg, ports = loopback(load("pull.yaml"), targets=[base.removeprefix("http://")], otlp_sink=sink.otlp, interval="1s")
        with running_collector(cfg, tmp_path, ports) as collector:
            found = wait_for(lambda: otlp_resources(sink, **{"host.name": "attr-host"}), what="the pulled resource")
    log = collector.log()
    attrs = found[-1]["attributes"]
    assert attrs["service.namespace"] == "edge" and attrs["deployment.environment.name"] == "prod"
    assert attrs["team_name"] == "infra"
    assert attrs["service.instance.id"] == "attr-host"
    assert not {"service_namespace", "deployment_environment_name", "host_name", "telemetry_sdk_name"} & set(attrs)
    assert not warnings_in(log), log


def test_pushed_otlp_carries_the_schema_url_and_a_stable_instance_id(sink):
    """Pushed straight to an OTLP receiver: resource and scope schema URLs are the semantic
    conventions' (no otel_scope_schema_url=""), and service.instance.id is the UUID derived from
    the host, the same after a restart."""
    from otel_bare_metal.telemetry.resource import SCHEMA_URL, service_instance_id

    ids = set()
    for run in range(2):
        env = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
               "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{sink.otlp}", "OTEL_METRIC_EXPORT_INTERVAL": "500",
               "OTEL_RESOURCE_ATTRIBUTES": "host.name=schema-host"}
        with running_exporter(*FIXTURE_ARGS, "--no-collector.hdhomerun", env=env):
            found = wait_for(lambda: len(otlp_resources(sink, **{"host.name": "schema-host"})) > run
                             and otlp_resources(sink, **{"host.name": "schema-host"}), what="pushed OTLP at the sink")
        ids |= {r["attributes"]["service.instance.id"] for r in found}
    assert ids == {service_instance_id({"host.name": "schema-host"})}
    for r in found:
        assert r["schemaUrl"] == SCHEMA_URL and r["scopes"] and set(r["scopes"]) == {SCHEMA_URL}
    labels, _ = one(sink.scrape(), "system_cpu_time_seconds_total", host_name="schema-host", cpu_logical_number="0",
                    cpu_mode="idle")
    assert labels.get("otel_scope_schema_url") == SCHEMA_URL
