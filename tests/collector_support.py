"""The real OpenTelemetry Collector (our distribution in otelcol/, built by scripts/go-peers) and the
Go-built node_exporter, for tests: locate the binaries, run a Collector on loopback, and the one
small substitution that makes a shipped config runnable in a test (loopback ports, sinks instead of
the production backends, a static target in place of Kubernetes discovery).

Building is done once and cached outside the repository (scripts/go-peers); scripts/test builds
both before the suite starts, so here a build only happens when a test is run on its own.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import urllib.parse
import re
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from helpers import ROOT, fetch, free_port, stop_process, wait_for_http

GO_PEERS = ROOT / "scripts" / "go-peers"
CONFIG_DIR = ROOT / "collector-config"
_paths: dict[str, str] = {}


def go_peer(name: str) -> str:
    """Path of a Go-built binary (``otelcol``, ``node_exporter`` or ``hdhomerun-peer``), building it
    when missing.  Fails (never skips) when it cannot be built: CI must run every peer."""
    if name not in _paths:
        done = subprocess.run([str(GO_PEERS), "path", name], capture_output=True, text=True, timeout=3600)
        assert done.returncode == 0, f"scripts/go-peers could not build {name}:\n{done.stderr[-4000:]}"
        _paths[name] = done.stdout.strip()
    return _paths[name]


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the substitution

# What kubernetes_sd_configs (role pod) would discover for the chart's pod on this node; the
# substitution hands exactly these labels to the scrape config's own relabelling.
K8S_POD_LABELS = {
    "__meta_kubernetes_pod_label_app_kubernetes_io_name": "otel-bare-metal",
    "__meta_kubernetes_pod_label_app_kubernetes_io_component": "host-exporter",
    "__meta_kubernetes_pod_container_port_name": "metrics",
    "__meta_kubernetes_pod_phase": "Running",
    "__meta_kubernetes_pod_node_name": "node-a",
    "__meta_kubernetes_pod_name": "otel-bare-metal-x7k2p",
    "__meta_kubernetes_namespace": "monitoring",
}


def loopback(cfg: dict[str, Any], *, targets: list[str] | None = None, otlp_sink: str | None = None,
             remote_write: str | None = None, k8s_targets: list[tuple[str, dict[str, str]]] | None = None,
             interval: str | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """A copy of a shipped config that runs in a test, and the ports it was given.

    Only addresses change: every listening ``endpoint`` (receivers, the prometheus exporter,
    extensions) moves to 127.0.0.1 on a free port; the Collector's own telemetry too (it would
    take :8888); a scrape job's static targets become ``targets``; ``kubernetes_sd_configs``
    becomes static targets carrying the labels Kubernetes discovery would give them
    (``k8s_targets``); forwarding exporters point at ``otlp_sink`` / ``remote_write``;
    ``interval`` shortens the scrape interval (and timeout) so a test need not wait 30 s.
    Processors, relabelling and pipelines are left exactly as shipped.
    """
    cfg = copy.deepcopy(cfg)
    ports: dict[str, int] = {}

    def listen(key: str) -> str:
        ports[key] = free_port()
        return f"127.0.0.1:{ports[key]}"

    for rid, receiver in (cfg.get("receivers") or {}).items():
        for proto, settings in ((receiver or {}).get("protocols") or {}).items():
            settings["endpoint"] = listen(f"{rid}/{proto}")
        if interval and (receiver or {}).get("config", {}).get("global"):
            receiver["config"]["global"].update(scrape_interval=interval, scrape_timeout=interval)
        for job in ((receiver or {}).get("config") or {}).get("scrape_configs", []):
            if "kubernetes_sd_configs" in job:
                assert k8s_targets is not None, f"{job['job_name']}: pass k8s_targets"
                job.pop("kubernetes_sd_configs")
                job["static_configs"] = [{"targets": [t], "labels": labels} for t, labels in k8s_targets]
            elif targets is not None and "static_configs" in job:
                fixed = job["static_configs"]
                # the exporter's own health job of the fleet config keeps its env placeholder
                if not any("${" in t for group in fixed for t in group.get("targets", [])):
                    job["static_configs"] = [{**group, "targets": targets} for group in fixed[:1]]
    for eid, exporter in (cfg.get("exporters") or {}).items():
        kind = eid.split("/")[0]
        if kind == "prometheus":
            exporter["endpoint"] = listen(eid)
        elif kind in ("otlp_grpc", "otlp_http"):
            assert otlp_sink, f"{eid}: pass otlp_sink"
            exporter["endpoint"] = otlp_sink
        elif kind == "prometheus_remote_write":
            assert remote_write, f"{eid}: pass remote_write"
            exporter["http"]["endpoint"] = remote_write
    for xid, extension in (cfg.get("extensions") or {}).items():
        if "endpoint" in (extension or {}):
            extension["endpoint"] = listen(xid)
    telemetry = cfg["service"].setdefault("telemetry", {})
    telemetry["metrics"] = {"readers": [{"pull": {"exporter": {"prometheus": {
        "host": "127.0.0.1", "port": free_port(), "without_scope_info": True}}}}]}
    return cfg, ports


# ----------------------------------------------------------------------------- a running Collector


class RunningCollector:
    def __init__(self, proc: subprocess.Popen, log: Path, ports: dict[str, int]):
        self.proc, self.log_path, self.ports = proc, log, ports

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def scrape(self, exporter: str = "prometheus") -> str:
        """The text its ``prometheus`` exporter serves."""
        return fetch(f"http://127.0.0.1:{self.ports[exporter]}/metrics")[2].decode()


@contextmanager
def running_collector(cfg: dict[str, Any], tmp_path: Path, ports: dict[str, int], env: dict[str, str] | None = None,
                      name: str = "otelcol") -> Iterator[RunningCollector]:
    """Run the real Collector with ``cfg`` until it logs that everything is ready."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([go_peer("otelcol"), f"--config=file:{config}"], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    running = RunningCollector(proc, log, ports)
    try:
        deadline = time.monotonic() + 60
        while "Everything is ready" not in running.log():
            assert proc.poll() is None, f"the Collector exited with {proc.returncode}:\n{running.log()}"
            assert time.monotonic() < deadline, f"the Collector did not start within 60s:\n{running.log()}"
            time.sleep(0.1)
        yield running
    finally:
        stop_process(proc, timeout=20)


def warnings_in(log: str) -> list[str]:
    """Log lines at warn level or above, and any line at any level that mentions a deprecation
    or asks for the configuration to be rewritten (the transform processor logs "… please
    rewrite them accordingly" at info when it had to add context prefixes to OTTL paths)."""
    return [line for line in log.splitlines()
            if re.search(r"\t(warn|error|fatal|panic)\t", line, re.I)
            or re.search(r"deprecat|please rewrite|rewrite (it|them)|will be removed", line, re.I)]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy (bounded in time); return that."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, AssertionError, KeyError, ValueError) as e:
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s (last error: {last_error!r})")


# ----------------------------------------------------------------------------- Debian's Prometheus


class RunningPrometheus:
    def __init__(self, url: str):
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        status, _, body = fetch(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert status == 200, body
        return json.loads(body)["data"]["result"]

    def series(self, selector: str) -> list[dict[str, str]]:
        status, _, body = fetch(self.url + "/api/v1/series?" + urllib.parse.urlencode({"match[]": selector}))
        assert status == 200, body
        return json.loads(body)["data"]


@contextmanager
def running_prometheus(tmp_path: Path, config: str, *flags: str) -> Iterator[RunningPrometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: install Debian's prometheus package (scripts/test does)"
    path = tmp_path / "prometheus.yml"
    path.write_text(config, encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/-/ready", timeout=30, proc=proc)
        yield RunningPrometheus(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
