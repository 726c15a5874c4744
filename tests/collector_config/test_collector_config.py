"""The OpenTelemetry Collector configurations in collector-config/: their shape and conventions.

The real Collector runs them in test_collector_real.py (validate, start-up log, end to end).
Here: the conventions the Collector does not enforce (components defined and used, current
component names, memory_limiter first, exporter-side batching instead of the batch processor,
a bare "$" the Collector would mangle), and every embedded Prometheus scrape config through the
real `promtool check config`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "collector-config"
FILES = sorted(CONFIG_DIR.glob("*.yaml"))
COLLECTOR_VERSION = "v0.161.0"

# Current component type names these configurations may use; a typo or an old name
# (otlp/otlphttp exporters, prometheusremotewrite, resourcedetection) is an error.
# test_collector_real.py checks that our Collector has every one of them.
KNOWN = {
    "receivers": {"otlp", "prometheus"},
    "processors": {"memory_limiter", "resource", "transform", "filter"},
    "exporters": {"otlp_grpc", "otlp_http", "prometheus", "prometheus_remote_write", "debug"},
    "extensions": {"health_check"},
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
        assert "batch" not in {_type(p) for p in procs}, f"{name}: batch in the exporter (sending_queue.batch), not a processor"
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
        assert "resource_to_telemetry_conversion" not in exp, f"{cid}: deprecated, use resource_constant_labels"
        if _type(cid) == "prometheus_remote_write":
            assert exp["http"]["endpoint"], f"{cid}: client settings belong under http (top level is deprecated)"
        if _type(cid) == "otlp_grpc":
            assert exp["endpoint"]
            assert exp["sending_queue"]["batch"]["flush_timeout"], f"{cid}: batch in the exporter"


def test_mixed_shop_copies_resource_attributes_to_labels() -> None:
    cfg = _load(CONFIG_DIR / "mixed-shop.yaml")
    included = cfg["exporters"]["prometheus"]["resource_constant_labels"]["included"]
    assert {"host.name", "k8s.node.name", "k8s.cluster.name"} <= set(included)
    assert not {"service.name", "service.instance.id"} & set(included), "those are job and instance already"
    assert set(cfg["receivers"]) == {"otlp", "prometheus"}


def test_scrape_job_name_matches_the_pushed_service_name() -> None:
    for name in ("pull.yaml", "pull-kubernetes.yaml", "mixed-shop.yaml"):
        cfg = _load(CONFIG_DIR / name)
        for rcv in _prometheus_receivers(cfg).values():
            assert [j["job_name"] for j in rcv["config"]["scrape_configs"]] == ["otel-bare-metal"], name


# ----------------------------------------------------------------- what a user's Collector meets


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_scrape_protocols_are_left_at_the_default(path: Path) -> None:
    """The receiver's default negotiates OpenMetrics, as a user's own Collector does; the page's
    # UNIT lines are written so that it yields the /metrics names (test_collector_real.py runs
    both with and without the pin)."""
    for rid, rcv in _prometheus_receivers(_load(path)).items():
        assert "scrape_protocols" not in rcv["config"].get("global", {}), f"{rid}: scrape_protocols pinned"
        for job in rcv["config"]["scrape_configs"]:
            assert "scrape_protocols" not in job, f"{rid}/{job['job_name']}: scrape_protocols pinned"


# OTTL paths of the transform processor's contexts; a statement must name its context on every
# path (resource.attributes[...], not attributes[...]), or the processor rewrites it and asks
# (at info level) for the file to be rewritten.
_OTTL_CONTEXTS = ("resource", "scope", "metric", "datapoint")
_OTTL_PATH = re.compile(r'(?<![\w."])((?:[a-z_]+\.)*)(attributes|name|unit|type|description)\b(?=\s*[\[,)=!<>]|\s*$)')


def _statements(cfg: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for pid, proc in (cfg.get("processors") or {}).items():
        if _type(pid) != "transform":
            continue
        for group in proc.get("metric_statements", []):
            for statement in group["statements"]:
                out.append((pid, group.get("context", ""), statement))
    return out


def _unquoted(statement: str) -> str:
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', statement)


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_ottl_paths_carry_their_context(path: Path) -> None:
    statements = _statements(_load(path))
    for pid, context, statement in statements:
        for prefix, _field in _OTTL_PATH.findall(_unquoted(statement)):
            assert prefix.rstrip(".").split(".")[0] == context, f"{pid}: path without its context prefix in {statement!r}"


def test_the_context_check_catches_a_bare_path() -> None:
    bare = 'set(attributes["host.name"], resource.attributes["host_name"]) where resource.attributes["host_name"] != nil'
    assert [p for p, _ in _OTTL_PATH.findall(_unquoted(bare))] == ["", "resource.", "resource."]


def _key_patterns(cfg: dict[str, Any]) -> list[str]:
    return [expand(m, {}) for _, _, statement in _statements(cfg)
            for m in re.findall(r'(?:delete|keep)_matching_keys\([^,]+,\s*"((?:\\.|[^"\\])*)"\)', statement)]


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_key_patterns_are_anchored_and_keep_what_they_do_not_name(path: Path) -> None:
    """A pattern matches whole keys: the current semantic-convention keys the statements restore
    (deployment.environment.name arrives as deployment_environment_name, service.namespace as
    service_namespace) and any attribute we do not know (team.name → team_name) survive it."""
    cfg = _load(path)
    restored = {m.group(2): m.group(1) for _, _, st in _statements(cfg)
                for m in [re.match(r'set\(resource\.attributes\["([\w.]+)"\], resource\.attributes\["(\w+)"\]\)', st)] if m}
    for pattern in _key_patterns(cfg):
        assert pattern.startswith("^") and pattern.endswith("$"), f"unanchored key pattern {pattern!r}"
        regex = re.compile(pattern)
        for kept in ("team_name", "deployment_environment_name_extra", "host_name_alias", "service_namespace_x"):
            assert not regex.search(kept), f"{pattern!r} deletes {kept}"
        for underscore in restored:
            # a restored key's Prometheus spelling goes (it was copied), the dotted key stays
            assert regex.search(underscore), f"{pattern!r} leaves {underscore} behind"
            assert not regex.search(restored[underscore]), f"{pattern!r} deletes {restored[underscore]}"
    if _key_patterns(cfg):
        assert {"deployment_environment_name", "service_namespace"} <= set(restored), "not restored"


EXAMPLES = sorted(CONFIG_DIR.glob("*")) + sorted((REPO / "helm").rglob("*.yaml")) + sorted((REPO / "helm").rglob("*.md")) + [
    REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "monitoring").glob("*"))]


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.is_file()], ids=lambda p: str(p.relative_to(REPO)))
def test_current_semantic_convention_keys(path: Path) -> None:
    """Configs and examples use deployment.environment.name, which replaced deployment.environment
    (semantic conventions 1.27)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if "deprecated" not in line:  # saying that it is deprecated is fine
            assert not re.search(r"deployment[._]environment(?![._]name)", line), f"{path.name}: {line.strip()}"


# ----------------------------------------------------------------- promtool


PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
SCRAPE_CASES = [(p, rid) for p in FILES for rid in _prometheus_receivers(_load(p))]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus')")
@pytest.mark.parametrize("path,receiver", SCRAPE_CASES, ids=[f"{p.name}:{r}" for p, r in SCRAPE_CASES])
def test_promtool_check_config(tmp_path: Path, path: Path, receiver: str) -> None:
    prom = expand_all(_load(path)["receivers"][receiver]["config"], TEST_ENV)
    assert "scrape_protocols" not in prom["global"]  # test_scrape_protocols_are_left_at_the_default
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


# ----------------------------------------------------------------- otelcol/: a builder manifest

OTELCOL = REPO / "otelcol"
GO_PEERS = REPO / "scripts" / "go-peers"
STABLE_VERSION = "v1.67.0"  # the stable modules' release that goes with v0.161.0


def _manifest() -> dict[str, Any]:
    return _load(OTELCOL / "manifest.yaml")


def _builder_version() -> str:
    (version,) = re.findall(r"^BUILDER_VERSION=(\S+)", GO_PEERS.read_text(encoding="utf-8"), re.M)
    return version


def test_otelcol_is_a_builder_manifest_not_hand_kept_go() -> None:
    """The distribution is generated by the upstream builder: no Go source, go.mod or go.sum
    is kept in otelcol/."""
    assert sorted(p.name for p in OTELCOL.iterdir()) == ["README.md", "manifest.yaml"]
    text = GO_PEERS.read_text(encoding="utf-8")
    assert "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" in text


def test_manifest_pins_every_module_to_the_builders_release() -> None:
    manifest = _manifest()
    assert _builder_version() == COLLECTOR_VERSION == "v" + manifest["dist"]["version"]
    modules = [m["gomod"] for kind in ("receivers", "processors", "exporters", "extensions", "providers")
               for m in manifest.get(kind, [])] + [manifest["telemetry"]["gomod"]]
    assert len(modules) > 10
    for gomod in modules:
        module, version = gomod.split(" ")
        assert module.startswith(("go.opentelemetry.io/collector/", "github.com/open-telemetry/opentelemetry-collector-contrib/"))
        assert version == (STABLE_VERSION if "/confmap/provider/" in module else COLLECTOR_VERSION), gomod
    assert manifest["dist"]["output_path"].startswith("./"), "relative to the builder's (empty) build directory"


def _go_peers_where(root: Path, cache: Path) -> str:
    done = subprocess.run([str(root / "scripts" / "go-peers"), "where", "otelcol"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "OTEL_BARE_METAL_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists(), reason="needs go")
def test_the_collector_cache_is_keyed_by_the_manifest(tmp_path: Path) -> None:
    """scripts/go-peers keys the built Collector by the manifest: the same manifest finds the
    same binary (and `path` returns it without building), an edited one gets a new place."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / "otelcol").mkdir()
    shutil.copy2(GO_PEERS, root / "scripts" / "go-peers")
    manifest = root / "otelcol" / "manifest.yaml"
    shutil.copy2(OTELCOL / "manifest.yaml", manifest)
    cache = tmp_path / "cache"
    first = _go_peers_where(root, cache)
    assert first.startswith(str(cache)) and _go_peers_where(root, cache) == first
    Path(first).parent.mkdir(parents=True)
    Path(first).write_text("#!/bin/sh\n")
    Path(first).chmod(0o755)
    done = subprocess.run([str(root / "scripts" / "go-peers"), "path", "otelcol"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "OTEL_BARE_METAL_CACHE": str(cache)})
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, first, "")
    manifest.write_text(manifest.read_text() + "\n# an edit\n")
    assert _go_peers_where(root, cache) != first
