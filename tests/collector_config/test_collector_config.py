"""The OpenTelemetry Collector configurations in collector-config/.

No Collector binary can run here, so this checks what the Collector would reject at start-up
(unknown or unused components, pipelines naming undefined ones, bad shapes, a bare "$" the
Collector would mangle), runs every embedded Prometheus scrape config through the real
`promtool check config`, runs the HDHomeRun fleet relabelling in a real Prometheus against a
loopback HTTP server, and replays the OTTL resource statements on the resources that pushed and
scraped otel-bare-metal instances produce, to show `job`, `instance` and `host.name` line up.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "collector-config"
FILES = sorted(CONFIG_DIR.glob("*.yaml"))
COLLECTOR_VERSION = "v0.139.0"

# Component types of otelcol-contrib that these configurations may use; a typo is an error.
KNOWN = {
    "receivers": {"otlp", "prometheus"},
    "processors": {"batch", "memory_limiter", "resourcedetection", "resource", "transform", "k8sattributes", "filter"},
    "exporters": {"otlp", "otlphttp", "prometheus", "prometheusremotewrite", "debug"},
    "extensions": {"health_check", "pprof", "zpages"},
}
KINDS = ("receivers", "processors", "exporters")
PIPELINE_KEYS = {"receivers", "processors", "exporters"}
TEST_ENV = {"K8S_NODE_NAME": "node-a", "MY_POD_IP": "10.1.2.3"}


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _ids(params: list[Path]) -> list[str]:
    return [p.name for p in params]


# ----------------------------------------------------------------- the Collector's ${...} and $$


_ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.S)


def expand(value: str, env: dict[str, str]) -> str:
    """Expand a string value as the Collector's confmap does: ``$$`` -> ``$``, ``${env:X[:-d]}``.

    A bare ``$`` (e.g. ``$1``) raises: the Collector would not pass it through as intended.
    """
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = value[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = value.find("}", i)
            if end < 0:
                raise ValueError(f"unterminated ${{ in {value!r}")
            m = _ENV_REF.fullmatch(value[i + 2 : end])
            if not m:
                raise ValueError(f"unsupported reference ${{{value[i + 2:end]}}} in {value!r}")
            name, default = m.group(1), m.group(2)
            got = env.get(name, "")
            out.append(got if got or default is None else default)  # ":-" also covers set-but-empty
            i = end + 1
        else:
            raise ValueError(f"bare '$' in {value!r}: write '$$' for a literal dollar (e.g. '$$1')")
    return "".join(out)


def expand_all(obj: Any, env: dict[str, str]) -> Any:
    if isinstance(obj, str):
        return expand(obj, env)
    if isinstance(obj, list):
        return [expand_all(v, env) for v in obj]
    if isinstance(obj, dict):
        return {k: expand_all(v, env) for k, v in obj.items()}
    return obj


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _prometheus_receivers(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in (cfg.get("receivers") or {}).items() if _type(k) == "prometheus"}


# ----------------------------------------------------------------- structure


def test_the_expected_files_exist() -> None:
    names = {p.name for p in FILES}
    assert {"pull.yaml", "push.yaml", "hdhomerun-fleet.yaml", "mixed-shop.yaml"} <= names
    assert (CONFIG_DIR / "README.md").is_file()
    readme = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
    assert COLLECTOR_VERSION in readme
    for name in names:
        assert name in readme, f"README.md does not describe {name}"


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_header_comment_says_when_and_which_version(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert len(header) >= 3, f"{path.name}: no leading comment block"
    assert "When to use" in text, f"{path.name}: the header does not say when to use it"
    assert f"Collector Contrib {COLLECTOR_VERSION}" in text, f"{path.name}: the header does not name the version"


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_components_defined_used_and_known(path: Path) -> None:
    cfg = _load(path)
    assert set(cfg) <= {"receivers", "processors", "exporters", "extensions", "connectors", "service"}
    pipelines = cfg["service"]["pipelines"]
    assert pipelines, "no pipelines"
    used: dict[str, set[str]] = {k: set() for k in KINDS}
    for name, pipeline in pipelines.items():
        assert re.fullmatch(r"(metrics|logs|traces)(/[A-Za-z0-9_.-]+)?", name), f"bad pipeline id {name!r}"
        assert name.split("/")[0] == "metrics", f"{name}: otel-bare-metal only produces metrics"
        assert set(pipeline) <= PIPELINE_KEYS, f"{name}: unexpected keys {set(pipeline) - PIPELINE_KEYS}"
        assert isinstance(pipeline.get("receivers"), list) and pipeline["receivers"], f"{name}: no receivers"
        assert isinstance(pipeline.get("exporters"), list) and pipeline["exporters"], f"{name}: no exporters"
        for kind in KINDS:
            ids = pipeline.get(kind) or []
            assert isinstance(ids, list)
            assert len(ids) == len(set(ids)), f"{name}: duplicate {kind}"
            for cid in ids:
                assert cid in (cfg.get(kind) or {}), f"{name} references {kind[:-1]} {cid!r}, which is not defined"
                used[kind].add(cid)
        procs = pipeline.get("processors") or []
        if "memory_limiter" in procs:
            assert procs[0] == "memory_limiter", f"{name}: memory_limiter must come first"
        batches = [p for p in procs if _type(p) == "batch"]
        assert batches and procs[-1] == batches[-1], f"{name}: batch must be there, and last"
    for kind in KINDS:
        defined = set(cfg.get(kind) or {})
        assert defined == used[kind], f"{kind} defined but in no pipeline: {sorted(defined - used[kind])}"
        for cid in defined:
            assert _type(cid) in KNOWN[kind], f"unknown {kind[:-1]} type {cid!r}"
    for ext in cfg["service"].get("extensions") or []:
        assert ext in (cfg.get("extensions") or {}), f"extension {ext!r} is not defined"
        assert _type(ext) in KNOWN["extensions"]
    assert set(cfg.get("extensions") or {}) <= set(cfg["service"].get("extensions") or [])


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_every_dollar_is_escaped_or_an_env_reference(path: Path) -> None:
    expand_all(_load(path), TEST_ENV)  # raises on a bare "$"


def test_expand_matches_the_collector() -> None:
    assert expand("$$1:$$2", {}) == "$1:$2"
    assert expand("${env:A}", {"A": "x"}) == "x"
    assert expand("${env:A:-d}:1", {}) == "d:1"
    with pytest.raises(ValueError):
        expand("$1", {})


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_component_settings(path: Path) -> None:
    cfg = expand_all(_load(path), TEST_ENV)
    for cid, rcv in (cfg.get("receivers") or {}).items():
        if _type(cid) == "otlp":
            protocols = rcv["protocols"]
            assert protocols["grpc"]["endpoint"].endswith(":4317")
            assert protocols["http"]["endpoint"].endswith(":4318")
            assert not protocols["grpc"]["endpoint"].startswith(("localhost", "127.")), "must listen beyond loopback"
        if _type(cid) == "prometheus":
            assert set(rcv) <= {"config", "target_allocator", "trim_metric_suffixes", "use_start_time_metric"}
            assert rcv["config"]["scrape_configs"]
    for cid, proc in (cfg.get("processors") or {}).items():
        if _type(cid) == "memory_limiter":
            assert proc["check_interval"] and 0 < proc["limit_percentage"] <= 100
        if _type(cid) == "transform":
            for group in proc["metric_statements"]:
                assert group["context"] == "resource"
                assert group["statements"]
    for cid, exp in (cfg.get("exporters") or {}).items():
        if _type(cid) in ("prometheus", "prometheusremotewrite"):
            assert "enabled" in exp["resource_to_telemetry_conversion"], f"{cid}: say whether resource attributes become labels"
        if _type(cid) == "otlp":
            assert exp["endpoint"]


def test_mixed_shop_copies_resource_attributes_to_labels() -> None:
    cfg = _load(CONFIG_DIR / "mixed-shop.yaml")
    assert cfg["exporters"]["prometheus"]["resource_to_telemetry_conversion"]["enabled"] is True
    assert set(cfg["receivers"]) == {"otlp", "prometheus"}


def test_scrape_job_name_matches_the_pushed_service_name() -> None:
    for name in ("pull.yaml", "pull-kubernetes.yaml", "mixed-shop.yaml"):
        cfg = _load(CONFIG_DIR / name)
        for rcv in _prometheus_receivers(cfg).values():
            assert [j["job_name"] for j in rcv["config"]["scrape_configs"]] == ["otel-bare-metal"], name


# ----------------------------------------------------------------- promtool


PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
SCRAPE_CASES = [(p, rid) for p in FILES for rid in _prometheus_receivers(_load(p))]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus')")
@pytest.mark.parametrize("path,receiver", SCRAPE_CASES, ids=[f"{p.name}:{r}" for p, r in SCRAPE_CASES])
def test_promtool_check_config(tmp_path: Path, path: Path, receiver: str) -> None:
    prom = expand_all(_load(path)["receivers"][receiver]["config"], TEST_ENV)
    if not _promtool_knows_kubernetes_sd(tmp_path):
        # Debian builds Prometheus without Kubernetes discovery: check that block here and let
        # promtool check everything else (relabelling included) with a static target in its place.
        for job in prom["scrape_configs"]:
            if "kubernetes_sd_configs" in job:
                _check_kubernetes_sd(job.pop("kubernetes_sd_configs"))
                job["static_configs"] = [{"targets": ["10.0.0.7:9464"]}]
    out = tmp_path / "prometheus.yml"
    out.write_text(yaml.safe_dump(prom, sort_keys=False), encoding="utf-8")
    done = subprocess.run([PROMTOOL, "check", "config", str(out)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


_K8S_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}


def _check_kubernetes_sd(sd_configs: list[dict[str, Any]]) -> None:
    """Validate kubernetes_sd_configs as Prometheus does (discovery/kubernetes SDConfig.UnmarshalYAML)."""
    allowed = {"role", "selectors", "namespaces", "api_server", "kubeconfig_file", "attach_metadata",
               "follow_redirects", "enable_http2", "tls_config", "authorization", "basic_auth", "oauth2"}  # fmt: skip
    for sd in sd_configs:
        assert set(sd) <= allowed, f"unknown kubernetes_sd_configs keys {set(sd) - allowed}"
        assert sd["role"] in _K8S_ROLES
        for sel in sd.get("selectors", []):
            assert set(sel) <= {"role", "label", "field"} and sel["role"] in _K8S_ROLES
            # pod role: only pod selectors are allowed
            assert sd["role"] != "pod" or sel["role"] == "pod"
            for key in ("label", "field"):
                if key in sel:
                    for term in sel[key].split(","):
                        assert re.fullmatch(r"[A-Za-z0-9./_-]+(=|==|!=)[A-Za-z0-9._-]*", term), term


_K8S_SD_SUPPORT: dict[str, bool] = {}


def _promtool_knows_kubernetes_sd(tmp_path: Path) -> bool:
    if "k8s" not in _K8S_SD_SUPPORT:
        probe = tmp_path / "k8s-probe.yml"
        probe.write_text("scrape_configs:\n  - job_name: x\n    kubernetes_sd_configs:\n      - role: pod\n")
        done = subprocess.run([PROMTOOL, "check", "config", str(probe)], capture_output=True, text=True, timeout=30)
        _K8S_SD_SUPPORT["k8s"] = done.returncode == 0
    return _K8S_SD_SUPPORT["k8s"]


# ----------------------------------------------------------------- the /probe relabelling, for real


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, list[str]]]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RecordingHandler)


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    server: _Recorder

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        with self.server.lock:
            self.server.calls.append((url.path, query))
        device = (query.get("target") or ["self"])[0]
        body = f'# TYPE hdhomerun_up gauge\nhdhomerun_up{{hdhomerun_device="{device}"}} 1\n'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package 'prometheus')")
def test_fleet_relabelling_in_a_real_prometheus(tmp_path: Path) -> None:
    recorder = _Recorder()
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    exporter = f"127.0.0.1:{recorder.server_address[1]}"
    cfg = _load(CONFIG_DIR / "hdhomerun-fleet.yaml")
    prom = expand_all(cfg["receivers"]["prometheus/hdhomerun"]["config"], {"HDHOMERUN_EXPORTER_ADDRESS": exporter})
    prom["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
    (probe_job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "hdhomerun"]
    # Same relabel rules; loopback tuners, so nothing could leave this machine even if they were wrong.
    tuners = ["127.0.0.2", "127.0.0.3:65001"]
    for group in probe_job["static_configs"]:
        group["targets"] = []
    probe_job["static_configs"][0]["targets"] = tuners
    for job in prom["scrape_configs"]:
        for group in job.get("static_configs", []):
            for t in group["targets"]:
                assert t.startswith("127."), t
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom, sort_keys=False), encoding="utf-8")
    web = f"127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={web}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        wanted = set(tuners)

        def probed() -> set[str]:
            with recorder.lock:
                return {q["target"][0] for p, q in recorder.calls if p == "/probe" and "target" in q}

        while probed() < wanted and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        if not probed() >= wanted:
            os.killpg(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"prometheus called {recorder.calls!r}; stderr: {err.decode(errors='replace')[-2000:]}")
        with recorder.lock:
            calls = list(recorder.calls)
        for path, query in calls:
            if path == "/probe":
                assert list(query) == ["target"] and len(query["target"]) == 1

        with urllib.request.urlopen(f"http://{web}/api/v1/targets?state=active", timeout=5) as r:
            targets = json.load(r)["data"]["activeTargets"]
        probes = {t["labels"]["instance"]: t for t in targets if t["labels"]["job"] == "hdhomerun"}
        assert set(probes) == wanted
        for tuner, t in probes.items():
            assert t["scrapeUrl"] == f"http://{exporter}/probe?target={urllib.parse.quote(tuner, safe='')}"
            assert t["labels"]["site"] == "home"
            assert t["discoveredLabels"]["__address__"] == tuner
        (own,) = [t for t in targets if t["labels"]["job"] == "hdhomerun-exporter"]
        assert own["scrapeUrl"] == f"http://{exporter}/metrics"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        recorder.shutdown()
        recorder.server_close()


# ----------------------------------------------------------------- resources line up (OTTL replay)

_ATTR = r'attributes\["([^"]+)"\]'
_STR = r'"((?:[^"\\]|\\.)*)"'


def _condition(cond: str | None, attrs: dict[str, Any]) -> bool:
    if cond is None:
        return True
    result = True
    for clause in cond.split(" and "):
        clause = clause.strip()
        if m := re.fullmatch(_ATTR + r" (==|!=) nil", clause):
            present = m.group(1) in attrs
            result &= present if m.group(2) == "!=" else not present
        elif m := re.fullmatch(_ATTR + r" (==|!=) " + _STR, clause):
            equal = attrs.get(m.group(1)) == m.group(3)
            result &= equal if m.group(2) == "==" else not equal
        else:
            raise AssertionError(f"the OTTL replay does not know the condition {clause!r}: teach it")
    return result


def run_ottl(statement: str, attrs: dict[str, Any]) -> None:
    """Apply one resource-context OTTL statement (the forms these files use) to ``attrs``."""
    body, _, cond = statement.partition(" where ")
    cond = cond or None
    if not _condition(cond, attrs):
        return
    if m := re.fullmatch(r"set\(" + _ATTR + r", " + _ATTR + r"\)", body):
        if m.group(2) in attrs:
            attrs[m.group(1)] = attrs[m.group(2)]
    elif m := re.fullmatch(r"set\(" + _ATTR + r", " + _STR + r"\)", body):
        attrs[m.group(1)] = m.group(2)
    elif m := re.fullmatch(r"delete_key\(attributes, " + _STR + r"\)", body):
        attrs.pop(m.group(1), None)
    elif m := re.fullmatch(r"delete_matching_keys\(attributes, " + _STR + r"\)", body):
        pattern = re.compile(m.group(1))
        for key in [k for k in attrs if pattern.search(k)]:
            del attrs[key]
    elif m := re.fullmatch(r"keep_keys\(attributes, \[(.*)\]\)", body):
        keep = set(re.findall(_STR, m.group(1)))
        for key in [k for k in attrs if k not in keep]:
            del attrs[key]
    else:
        raise AssertionError(f"the OTTL replay does not know the statement {body!r}: teach it")


def run_processors(cfg: dict[str, Any], pipeline: str, attrs: dict[str, Any]) -> dict[str, Any]:
    attrs = dict(attrs)
    for pid in cfg["service"]["pipelines"][pipeline].get("processors") or []:
        proc = cfg["processors"][pid]
        if _type(pid) == "transform":
            for group in proc["metric_statements"]:
                for statement in group["statements"]:
                    run_ottl(statement, attrs)
        elif _type(pid) == "resource":
            for action in proc["attributes"]:
                if action["action"] == "insert" and action["key"] not in attrs:
                    attrs[action["key"]] = action["value"]
                elif action["action"] == "upsert":
                    attrs[action["key"]] = action["value"]
                elif action["action"] == "delete":
                    attrs.pop(action["key"], None)
    return attrs


def prometheus_labels(resource: dict[str, Any], to_labels: bool) -> dict[str, str]:
    """job/instance as the Collector's Prometheus exporters derive them (+ resource labels if enabled)."""
    ns, name = resource.get("service.namespace"), resource.get("service.name")
    labels = {"job": f"{ns}/{name}" if ns else name, "instance": resource.get("service.instance.id")}
    if to_labels:
        for k, v in resource.items():
            labels.setdefault(re.sub(r"[^A-Za-z0-9_]", "_", k), str(v))
    return labels


# What the exporter's SDK resource is on node-a (service.*, host.*, os.type, k8s.* and the user's attributes).
SDK_RESOURCE = {
    "service.name": "otel-bare-metal",
    "service.version": "1.2.0",
    "service.instance.id": "6f1c2a4e-0000-4000-8000-123456789abc",
    "host.name": "node-a",
    "host.arch": "amd64",
    "os.type": "linux",
    "k8s.node.name": "node-a",
    "k8s.pod.name": "otel-bare-metal-x7k2p",
    "deployment.environment": "prod",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.45.2",
}


def pushed_resource() -> dict[str, Any]:
    return dict(SDK_RESOURCE)


def scraped_resource(job: str, instance: str, scheme: str = "http", sd: dict[str, str] | None = None) -> dict[str, Any]:
    """What the prometheus receiver makes of a scrape of the same exporter (CreateResource + target_info)."""
    host, _, port = instance.rpartition(":") if re.search(r":\d+\Z", instance) else (instance, "", "")
    attrs = {"service.name": job, "service.instance.id": instance, "server.address": host, "server.port": port, "url.scheme": scheme}
    attrs.update(sd or {})
    # target_info: one label per resource attribute, dots turned into underscores (minus job/instance).
    attrs.update({re.sub(r"[^A-Za-z0-9_]", "_", k): v for k, v in SDK_RESOURCE.items()})
    return attrs


def _scraped_instance(cfg: dict[str, Any], address: str, sd: dict[str, str] | None = None) -> str:
    """Apply the job's instance relabelling (only the simple forms used here) to a target address."""
    (rcv,) = _prometheus_receivers(cfg).values()
    (job,) = expand_all(rcv["config"], TEST_ENV)["scrape_configs"]
    labels = {"__address__": address, **(sd or {})}
    instance = address
    for rule in job.get("relabel_configs", []):
        if rule.get("target_label") != "instance":
            continue
        value = ";".join(labels.get(s, "") for s in rule["source_labels"])
        m = re.fullmatch(rule.get("regex", "(.*)"), value)
        if m:
            instance = m.expand(rule.get("replacement", "$1").replace("$", "\\"))
    return instance


def test_pull_and_push_line_up() -> None:
    push = _load(CONFIG_DIR / "push.yaml")
    pushed = run_processors(push, "metrics", pushed_resource())
    for name, sd in (
        ("pull.yaml", None),
        (
            "pull-kubernetes.yaml",
            {"__meta_kubernetes_pod_node_name": "node-a"},
        ),
    ):
        cfg = _load(CONFIG_DIR / name)
        instance = _scraped_instance(cfg, "10.0.0.7:9464", sd)
        k8s = {"k8s.node.name": "node-a", "k8s.pod.name": "otel-bare-metal-x7k2p", "k8s.namespace.name": "monitoring"} if sd else None
        scraped = run_processors(cfg, "metrics", scraped_resource("otel-bare-metal", instance, sd=k8s))
        p, s = prometheus_labels(pushed, False), prometheus_labels(scraped, False)
        assert p == s == {"job": "otel-bare-metal", "instance": "node-a"}, name
        assert scraped["host.name"] == pushed["host.name"] == "node-a", name
        assert not [k for k in scraped if "_" in k and "." not in k], f"{name}: target_info names left: {scraped}"


def test_mixed_shop_series_get_identical_labels() -> None:
    cfg = _load(CONFIG_DIR / "mixed-shop.yaml")
    instance = _scraped_instance(cfg, "legacy-a.example.internal:9464")
    assert instance == "legacy-a.example.internal"
    pushed = run_processors(cfg, "metrics", pushed_resource())
    scraped = run_processors(cfg, "metrics", scraped_resource("otel-bare-metal", instance))
    assert pushed == scraped
    labels = prometheus_labels(pushed, True)
    assert labels == prometheus_labels(scraped, True)
    assert labels["job"] == "otel-bare-metal" and labels["instance"] == "node-a" and labels["host_name"] == "node-a"
    assert not any(k.startswith("telemetry_sdk") for k in labels)
    # A /probe scrape through the same Collector keeps its per-tuner instance.
    probe = scraped_resource("hdhomerun", "192.0.2.10")
    assert run_processors(cfg, "metrics", probe)["service.instance.id"] == "192.0.2.10"


def test_fleet_resource_is_the_tuner() -> None:
    cfg = _load(CONFIG_DIR / "hdhomerun-fleet.yaml")
    tuner = run_processors(cfg, "metrics/hdhomerun", scraped_resource("hdhomerun", "192.0.2.10"))
    assert prometheus_labels(tuner, False) == {"job": "hdhomerun", "instance": "192.0.2.10"}
    assert tuner["hdhomerun.exporter.host"] == "node-a"
    assert not [k for k in tuner if "_" in k and "." not in k], tuner
