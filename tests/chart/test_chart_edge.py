"""Helm on edge clusters: pod-volume mount excludes, instance = node name on every monitor,
registry overrides, monitor options, the autoscaler annotation and revisionHistoryLimit."""

from __future__ import annotations

import re

import pytest
import helm_python as helm  # PyPI: helm-python-sdk

from chart_support import CHART_DIR, NAMESPACE
from otel_bare_metal.collectors.filesystem.source import MountFilter
from otel_bare_metal.procfs import Mount

import yaml

# Mount points a node really has: pod volumes (excluded) and filesystems worth watching (kept).
POD_VOLUMES = [
    "/var/lib/kubelet/pods/6f1d2c3a-0b1e-4c9a-9d1e-3f0a1b2c3d4e/volumes/kubernetes.io~projected/kube-api-access-x7k2p",
    "/var/lib/kubelet/pods/6f1d2c3a-0b1e-4c9a-9d1e-3f0a1b2c3d4e/volumes/kubernetes.io~empty-dir/tmp",
    "/var/lib/kubelet/plugins/kubernetes.io/csi/driver.longhorn.io/abc/globalmount",
    "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/9c0d1e2f3a4b/shm",
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io/9c0d1e2f3a4b/rootfs",
    "/run/k3s/containerd/io.containerd.grpc.v1.cri/sandboxes/9c0d1e2f3a4b/shm",
    "/run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/9c0d1e2f3a4b/rootfs",
    "/var/lib/k0s/kubelet/pods/6f1d2c3a/volumes/kubernetes.io~projected/kube-api-access-abcde",
    "/var/snap/microk8s/common/var/lib/kubelet/pods/6f1d2c3a/volumes/kubernetes.io~projected/kube-api-access-abcde",
    "/var/snap/microk8s/common/run/containerd/io.containerd.grpc.v1.cri/sandboxes/9c0d/shm",
    "/snap/core22/1380",
    "/var/lib/docker/overlay2/abc/merged",
    "/run/credentials/systemd-resolved.service",
]
KEPT = ["/", "/boot", "/home", "/data", "/var/lib/kubelet", "/var/lib/rancher", "/var/lib/longhorn", "/run", "/srv/nfs",
        "/var/snap", "/mnt/snapshots"]


def _configmap(rendered) -> dict:
    return rendered.one("ConfigMap")["data"]


def test_default_mount_excludes_drop_pod_volumes_and_keep_real_filesystems(default_render):
    regex = _configmap(default_render)["OTEL_BARE_METAL_COLLECTOR_FILESYSTEM_MOUNT_POINTS_EXCLUDE"]
    keep = MountFilter(mount_points_exclude=regex).keep  # the exporter's own filter, as in the pod
    for path in POD_VOLUMES:
        assert not keep(Mount(mountpoint=path, device="tmpfs", fstype="ext4", readonly=False)), f"{path} is a pod volume: must be excluded"
    for path in KEPT:
        assert keep(Mount(mountpoint=path, device="/dev/sda1", fstype="ext4", readonly=False)), f"{path} must be kept"


def test_chart_default_includes_the_exporters_own_default():
    from otel_bare_metal.collectors.filesystem.source import DEFAULT_MOUNT_POINTS_EXCLUDE

    chart = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["collectors"]["filesystem"]["mountPointsExclude"]
    ours = MountFilter(mount_points_exclude=DEFAULT_MOUNT_POINTS_EXCLUDE).keep
    theirs = MountFilter(mount_points_exclude=chart).keep
    for path in ["/dev", "/dev/shm", "/proc", "/sys/fs/cgroup", "/var/lib/docker/x", "/run/credentials/x",
                 "/var/lib/containers/storage/overlay"]:
        if not ours(Mount(mountpoint=path, device="x", fstype="ext4", readonly=False)):
            assert not theirs(Mount(mountpoint=path, device="x", fstype="ext4", readonly=False)), f"the chart keeps {path}, which the exporter drops"


def _monitors(rendered):
    return rendered.of_kind("ServiceMonitor") + rendered.of_kind("PodMonitor")


@pytest.mark.parametrize("values", [
    {"serviceMonitor": {"enabled": True}},
    {"service": {"enabled": False}, "podMonitor": {"enabled": True}},
    {"serviceMonitor": {"enabled": True}, "hdhomerun": {"enabled": True, "devices": ["192.168.1.50"]}},
])
def test_instance_is_the_node_name_on_every_monitor(render, values):
    monitors = _monitors(render(values))
    assert monitors
    for monitor in monitors:
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        for endpoint in endpoints:
            first = endpoint["relabelings"][:2]
            assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "instance"} in first
            assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in first


def test_user_relabelings_run_after_the_chart_ones(rendered_scenarios):
    monitor = rendered_scenarios["monitors-values.yaml"].one("ServiceMonitor")
    relabelings = monitor["spec"]["endpoints"][0]["relabelings"]
    assert relabelings[-1]["targetLabel"] == "zone" and relabelings[1]["targetLabel"] == "instance"


@pytest.mark.parametrize("scenario,kind", [("monitors-values.yaml", "ServiceMonitor"), ("podmonitor-values.yaml", "PodMonitor")])
def test_monitor_options(rendered_scenarios, scenario, kind):
    from chart_support import scenario_values

    wanted = scenario_values(scenario)["serviceMonitor" if kind == "ServiceMonitor" else "podMonitor"]
    for monitor in rendered_scenarios[scenario].of_kind(kind):
        spec = monitor["spec"]
        assert monitor["metadata"]["namespace"] == wanted["namespace"] == "observability"
        assert spec["namespaceSelector"]["matchNames"] == [NAMESPACE], "it still selects the release's pods"
        assert spec["sampleLimit"] == wanted["sampleLimit"]
        assert spec["attachMetadata"] == {"node": True}
        assert spec["podTargetLabels"] == wanted["podTargetLabels"]


def test_monitor_options_default_to_absent(render):
    spec = render({"serviceMonitor": {"enabled": True}}).one("ServiceMonitor")
    assert spec["metadata"]["namespace"] == NAMESPACE
    assert not {"sampleLimit", "attachMetadata", "podTargetLabels"} & set(spec["spec"])


def _images(rendered) -> set[str]:
    return {c["image"] for kind in ("DaemonSet", "Deployment") for d in rendered.of_kind(kind)
            for c in d["spec"]["template"]["spec"]["containers"]}


def test_image_registry_overrides(render, rendered_scenarios):
    version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    assert _images(render({})) == {f"ghcr.io/otel-bare-metal/otel-bare-metal:{version}"}
    assert _images(render({"image": {"registry": "mirror.local"}})) == {f"mirror.local/otel-bare-metal/otel-bare-metal:{version}"}
    assert _images(render({"image": {"registry": "", "repository": "docker.io/me/obm"}})) == {f"docker.io/me/obm:{version}"}
    air = rendered_scenarios["air-gapped-values.yaml"]
    assert _images(air) == {f"registry.edge.internal:5000/otel-bare-metal/otel-bare-metal:{version}"}, "global wins"
    assert len(air.of_kind("Deployment")) == 1, "the HDHomeRun Deployment uses it too"
    digest = "sha256:" + "a" * 64
    assert _images(render({"global": {"imageRegistry": "r.local/"}, "image": {"digest": digest}})) == \
        {f"r.local/otel-bare-metal/otel-bare-metal@{digest}"}


def _pod_annotations(rendered):
    return [d["spec"]["template"]["metadata"]["annotations"] for kind in ("DaemonSet", "Deployment") for d in rendered.of_kind(kind)]


def test_safe_to_evict_annotation_and_revision_history(render, rendered_scenarios):
    key = "cluster-autoscaler.kubernetes.io/safe-to-evict"
    hd = {"hdhomerun": {"enabled": True, "devices": ["192.168.1.50"]}}
    assert all(a[key] == "true" for a in _pod_annotations(render(hd)))
    assert all(a[key] == "false" for a in _pod_annotations(rendered_scenarios["air-gapped-values.yaml"]))
    assert all(key not in a for a in _pod_annotations(render({**hd, "safeToEvict": None})))
    for d in render(hd).of_kind("DaemonSet") + render(hd).of_kind("Deployment"):
        assert d["spec"]["revisionHistoryLimit"] == 10
    air = rendered_scenarios["air-gapped-values.yaml"]
    for d in air.of_kind("DaemonSet") + air.of_kind("Deployment"):
        assert d["spec"]["revisionHistoryLimit"] == 3


def test_log_format_reaches_the_exporter(default_render, rendered_scenarios):
    assert _configmap(default_render)["OTEL_BARE_METAL_LOG_FORMAT"] == "logfmt"
    assert _configmap(rendered_scenarios["air-gapped-values.yaml"])["OTEL_BARE_METAL_LOG_FORMAT"] == "json"


@pytest.mark.parametrize("values,where", [
    ({"logFormat": "xml"}, "logFormat"),
    ({"safeToEvict": "yes"}, "safeToEvict"),
    ({"daemonset": {"revisionHistoryLimit": -1}}, "revisionHistoryLimit"),
    ({"serviceMonitor": {"sampleLimit": -5}}, "sampleLimit"),
    ({"serviceMonitor": {"attachMetadata": {"nodes": True}}}, "attachMetadata"),
    ({"podMonitor": {"podTargetLabels": "app"}}, "podTargetLabels"),
    ({"image": {"registry": "bad registry"}}, "registry"),
])
def test_schema_refuses_bad_new_values(render, values, where):
    with pytest.raises(helm.HelmError, match=where):
        render(values)


def test_every_new_value_is_in_a_ci_scenario():
    text = "".join(p.read_text() for p in (CHART_DIR / "ci").glob("*-values.yaml"))
    for key in ("imageRegistry", "registry:", "logFormat", "safeToEvict", "revisionHistoryLimit", "sampleLimit",
                "attachMetadata", "podTargetLabels", "namespace: observability", "mountPointsExclude"):
        assert re.search(re.escape(key), text), f"no ci/ scenario sets {key}"
