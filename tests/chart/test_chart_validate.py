"""Every rendered manifest of every scenario validates strictly against the Kubernetes 1.30
schemas and the newest ones kubernetes-validate ships.

kubernetes-validate has no schemas for the prometheus-operator CRDs (ServiceMonitor, PodMonitor,
PrometheusRule): those documents are checked here against the fields of monitoring.coreos.com/v1
that the chart uses, by hand and minimally (known keys, required keys, types).
"""

from __future__ import annotations

import pytest

from chart_support import SCENARIOS

import kubernetes_validate  # noqa: E402  (a test extra: pip install -e '.[test]')

KUBE_VERSIONS = sorted({"1.30.0", kubernetes_validate.latest_version()})
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}

ENDPOINT_KEYS = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "tlsConfig", "basicAuth", "relabelings", "metricRelabelings"}
RELABEL_KEYS = {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifests_validate_strictly(rendered_scenarios, scenario, version):
    checked = 0
    for doc in rendered_scenarios[scenario].docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {version}: {e.message} at {list(e.path)}")
        checked += 1
    assert checked


def _check_metadata(doc):
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, set(doc)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    meta = doc["metadata"]
    assert set(meta) <= {"name", "namespace", "labels", "annotations"}
    assert isinstance(meta["name"], str) and meta["name"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta["labels"].items())


def _check_relabelings(items):
    assert isinstance(items, list)
    for r in items:
        assert set(r) <= RELABEL_KEYS, r
        if "sourceLabels" in r:
            assert isinstance(r["sourceLabels"], list)


def _check_monitor(doc, endpoints_key):
    _check_metadata(doc)
    spec = doc["spec"]
    assert set(spec) <= {"jobLabel", "namespaceSelector", "selector", endpoints_key, "sampleLimit", "attachMetadata", "podTargetLabels"}
    assert isinstance(spec.get("sampleLimit", 0), int) and spec.get("sampleLimit", 0) >= 0
    assert set(spec.get("attachMetadata", {})) <= {"node"} and all(isinstance(v, bool) for v in spec.get("attachMetadata", {}).values())
    assert all(isinstance(label, str) and label for label in spec.get("podTargetLabels", []))
    assert isinstance(spec["selector"]["matchLabels"], dict) and spec["selector"]["matchLabels"]
    assert isinstance(spec["namespaceSelector"]["matchNames"], list)
    assert spec[endpoints_key]
    for ep in spec[endpoints_key]:
        assert set(ep) <= ENDPOINT_KEYS, set(ep) - ENDPOINT_KEYS
        assert isinstance(ep["port"], str) and ep["path"].startswith("/")
        assert ep["scheme"] in ("http", "https")
        _check_relabelings(ep.get("relabelings", []))
        _check_relabelings(ep.get("metricRelabelings", []))


def _check_rule(doc):
    _check_metadata(doc)
    assert set(doc["spec"]) == {"groups"}
    names = set()
    for group in doc["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        assert group["name"] not in names
        names.add(group["name"])
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
            assert ("alert" in rule) != ("record" in rule)
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            for key in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(key, {}).values())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_prometheus_operator_documents(rendered_scenarios, scenario):
    for doc in rendered_scenarios[scenario].docs:
        if doc["kind"] == "ServiceMonitor":
            _check_monitor(doc, "endpoints")
        elif doc["kind"] == "PodMonitor":
            _check_monitor(doc, "podMetricsEndpoints")
        elif doc["kind"] == "PrometheusRule":
            _check_rule(doc)


def test_some_scenario_has_each_crd(rendered_scenarios):
    kinds = {d["kind"] for r in rendered_scenarios.values() for d in r.docs}
    assert CRD_KINDS <= kinds
    assert {"DaemonSet", "Deployment", "Service", "ServiceAccount", "ConfigMap", "NetworkPolicy"} <= kinds
