"""The chart renders every scenario, refuses misspelt values, stops on impossible combinations,
and its defaults are locked down and read the host through read-only mounts."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from chart_support import CHART_DIR, GOLDEN_DIR, REPO, SCENARIOS, helm, scenario_values, update_golden

WORKLOADS = ("DaemonSet", "Deployment")


def exporter(workload: dict) -> dict:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def env_of(rendered, workload: dict) -> dict[str, str]:
    """ConfigMap settings overlaid with the container's literal env."""
    container = exporter(workload)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        (cm,) = [d for d in rendered.of_kind("ConfigMap") if d["metadata"]["name"] == name]
        env.update(cm["data"])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


# ---------------------------------------------------------------------------- lint and scenarios


def test_lint_strict():
    report = helm.lint(str(CHART_DIR), strict=True, kube_version="v1.30.0")
    errors = [m for m in report["messages"] if m["severity"] >= 2]  # 2 = warning, 3 = error
    assert not report["errors"] and not errors, report


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict_each_scenario(scenario):
    report = helm.lint(str(CHART_DIR), scenario_values(scenario), strict=True, quiet=True)
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2], report


def test_required_scenarios_exist():
    for wanted in ("default", "monitors", "hdhomerun", "otlp-push", "no-root-mount"):
        assert f"{wanted}-values.yaml" in SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_renders(rendered_scenarios, scenario):
    rendered = rendered_scenarios[scenario]
    assert rendered.docs, "nothing rendered"
    assert rendered.notes.strip(), "NOTES.txt rendered empty"
    assert any(k in WORKLOADS for k in rendered.kinds())
    for doc in rendered.docs:
        assert doc["metadata"]["name"] and len(doc["metadata"]["name"]) <= 63
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "obm"


# ---------------------------------------------------------------------------- the schema


def test_defaults_pass_the_schema(chart):
    chart.validate_schema(chart.values)


@pytest.mark.parametrize(
    "values",
    [
        {"serviceMonitr": {"enabled": True}},  # misspelt top-level key
        {"image": {"repositry": "example.org/x"}},  # misspelt nested key
        {"hostRootFsMount": {"mountPropogation": "HostToContainer"}},
        {"hostRootFsMount": {"mountPropagation": "HostToContainr"}},  # bad enum value
        {"metricsExporter": "otlp,prometeus"},
        {"port": "9464"},  # wrong type
        {"port": 70000},
        {"otlp": {"protocol": "http"}},
        {"hdhomerun": {"device": ["192.168.1.50"]}},
    ],
    ids=lambda v: json.dumps(v, separators=(",", ":")),
)
def test_misspelt_or_invalid_values_are_refused(render, values):
    with pytest.raises(helm.HelmValuesError) as e:
        render(values)
    assert "schema" in str(e.value) or "not allowed" in str(e.value) or "at '" in str(e.value)


def test_subchart_keys_global_and_enabled_are_allowed(render):
    rendered = render({"global": {"imageRegistry": "example.org"}, "enabled": True})
    assert "DaemonSet" in rendered.kinds()


# ---------------------------------------------------------------------------- fail guards

GUARDS = [
    ({"daemonset": {"enabled": False}}, "nothing to install"),
    ({"metricsExporter": "none"}, "metricsExporter is none"),
    ({"serviceMonitor": {"enabled": True}, "service": {"enabled": False}}, "needs service.enabled"),
    ({"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}, "scraped twice"),
    ({"podMonitor": {"enabled": True}, "metricsExporter": "otlp", "otlp": {"endpoint": "http://c:4317"}}, "include prometheus"),
    ({"metricsExporter": "prometheus,otlp"}, "otlp.endpoint is empty"),
    ({"hdhomerun": {"enabled": True}}, "nothing to probe"),
    ({"hdhomerun": {"enabled": True, "discover": True}}, "set hdhomerun.hostNetwork=true"),
    ({"hdhomerun": {"enabled": True, "devices": ["192.168.1.50", "1050ABCE"]}}, "device id 1050ABCE"),
    ({"scheme": "https"}, "needs webConfig.existingSecret"),
    ({"networkPolicy": {"enabled": True}, "hostNetwork": True}, "no effect on hostNetwork"),
]


@pytest.mark.parametrize("values,message", GUARDS, ids=[m for _, m in GUARDS])
def test_fail_guard(chart, render, values, message):
    chart.validate_schema(values)  # the combination is schema-valid: only the guard stops it
    with pytest.raises(helm.HelmRenderError) as e:
        render(values)
    assert message in str(e.value)


@pytest.mark.parametrize("values,message", GUARDS, ids=[m for _, m in GUARDS])
def test_fail_guard_is_not_run_by_lint(values, message):
    """Why every scenario is rendered: Helm's lint mode turns ``fail`` into a log line, so
    lint passes a combination that ``helm template``/``install`` refuse."""
    report = helm.lint(str(CHART_DIR), values)
    assert not report["errors"], report


# ---------------------------------------------------------------------------- locked-down defaults


def test_default_daemonset_is_locked_down(default_render):
    ds = default_render.one("DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    container = exporter(ds)
    psc, csc = pod["securityContext"], container["securityContext"]

    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0 and psc["runAsGroup"] != 0
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["runAsNonRoot"] is True and csc["runAsUser"] != 0
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["privileged"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in csc["capabilities"]
    assert csc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert default_render.one("ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["hostNetwork"] is False and pod["hostPID"] is False
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "resources" not in container  # empty by default


def test_default_reads_the_host_through_read_only_mounts(default_render):
    ds = default_render.one("DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    container = exporter(ds)
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host_paths == {"proc": "/proc", "sys": "/sys", "root": "/"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for name in host_paths:
        assert mounts[name]["readOnly"] is True, name
    assert mounts["root"]["mountPropagation"] == "HostToContainer"
    args = container["args"]
    assert f"--path.procfs={mounts['proc']['mountPath']}" in args
    assert f"--path.sysfs={mounts['sys']['mountPath']}" in args
    assert f"--path.rootfs={mounts['root']['mountPath']}" in args
    # Every volume that is not a host path is an emptyDir or Secret: nothing else writable.
    for v in pod["volumes"]:
        assert set(v) & {"hostPath", "emptyDir", "secret", "configMap"}, v


def test_default_probes_and_port(default_render):
    ds = default_render.one("DaemonSet")
    container = exporter(ds)
    (port,) = container["ports"]
    assert port["containerPort"] == 9464
    assert "--web.listen-address=:9464" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert get["port"] == port["name"]
    svc = default_render.one("Service")
    assert svc["spec"]["ports"][0]["port"] == 9464 and svc["spec"]["ports"][0]["targetPort"] == port["name"]
    assert svc["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert svc["metadata"]["annotations"]["prometheus.io/port"] == "9464"


def test_default_scheduling(default_render):
    pod = default_render.one("DaemonSet")["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    keys = {e["key"]: e for e in term["matchExpressions"]}
    assert keys["eks.amazonaws.com/compute-type"] == {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]}
    assert keys["type"]["values"] == ["virtual-kubelet"]
    assert {"operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    strategy = default_render.one("DaemonSet")["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate"


def test_default_node_identity_from_downward_api(default_render):
    env = {e["name"]: e for e in exporter(default_render.one("DaemonSet"))["env"]}
    assert env["K8S_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_default_has_no_optional_objects(default_render):
    assert sorted(default_render.kinds()) == ["ConfigMap", "DaemonSet", "Service", "ServiceAccount"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_stays_locked_down(rendered_scenarios, scenario):
    for workload in (d for d in rendered_scenarios[scenario].docs if d["kind"] in WORKLOADS):
        pod = workload["spec"]["template"]["spec"]
        csc = exporter(workload)["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert csc["readOnlyRootFilesystem"] is True and csc["allowPrivilegeEscalation"] is False
        assert csc["capabilities"] == {"drop": ["ALL"]}
        assert pod["automountServiceAccountToken"] is False
        for mount in exporter(workload)["volumeMounts"]:
            if mount["name"] in ("proc", "sys", "root"):
                assert mount["readOnly"] is True


# ---------------------------------------------------------------------------- values at work


def test_one_port_moves_everything(rendered_scenarios):
    rendered = rendered_scenarios["host-network-values.yaml"]
    ds = rendered.one("DaemonSet")
    container = exporter(ds)
    assert container["ports"][0]["containerPort"] == 9500
    assert "--web.listen-address=:9500" in container["args"]
    assert rendered.one("Service")["spec"]["ports"][0]["port"] == 9500
    assert rendered.one("Service")["metadata"]["annotations"]["prometheus.io/port"] == "9500"
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["hostPID"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["priorityClassName"] == "system-node-critical"


def test_port_moves_monitors_and_network_policy(render):
    rendered = render({"port": 9999, "serviceMonitor": {"enabled": True}, "networkPolicy": {"enabled": True}})
    svc = rendered.one("Service")
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 9999
    assert rendered.one("ServiceMonitor")["spec"]["endpoints"][0]["port"] == port["name"]
    assert rendered.one("NetworkPolicy")["spec"]["ingress"][0]["ports"][0]["port"] == 9999
    for probe in ("livenessProbe", "readinessProbe"):
        assert exporter(rendered.one("DaemonSet"))[probe]["httpGet"]["port"] == port["name"]


def test_user_affinity_merges_with_virtual_node_exclusion(rendered_scenarios):
    pod = rendered_scenarios["host-network-values.yaml"].one("DaemonSet")["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    keys = [e["key"] for e in term["matchExpressions"]]
    assert keys == ["node-role.kubernetes.io/edge", "eks.amazonaws.com/compute-type", "type"]


def test_exclusion_is_added_to_every_user_term_and_can_be_turned_off(render):
    terms = [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"matchExpressions": [{"key": "b", "operator": "Exists"}]}]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": copy.deepcopy(terms)}},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    pod = render({"affinity": affinity}).one("DaemonSet")["spec"]["template"]["spec"]
    got = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert [len(t["matchExpressions"]) for t in got] == [3, 3]
    assert "podAntiAffinity" in pod["affinity"]
    pod = render({"excludeNodes": []}).one("DaemonSet")["spec"]["template"]["spec"]
    assert "affinity" not in pod


def test_extra_hooks(rendered_scenarios):
    container = exporter(rendered_scenarios["host-network-values.yaml"].one("DaemonSet"))
    assert "--metrics.scope-labels" in container["args"]
    assert {"name": "OTEL_BARE_METAL_LOG_LEVEL", "value": "debug"} in container["env"]
    assert {"name": "extra-config", "mountPath": "/etc/site", "readOnly": True} in container["volumeMounts"]
    assert container["resources"]["limits"]["memory"] == "96Mi"


def test_config_change_rolls_the_pods(render):
    def checksum(values):
        return render(values).one("DaemonSet")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"logLevel": "debug"})
    assert checksum({}) != checksum({"collectors": {"filesystem": {"mountTimeout": 9}}})


def test_configmap_carries_the_settings(rendered_scenarios):
    rendered = rendered_scenarios["host-network-values.yaml"]
    env = env_of(rendered, rendered.one("DaemonSet"))
    assert env["OTEL_BARE_METAL_COLLECTOR_FILESYSTEM_MOUNT_TIMEOUT"] == "2.5"
    assert env["OTEL_BARE_METAL_COLLECTOR_FILESYSTEM_MOUNT_POINTS_EXCLUDE"].startswith("^/(dev|proc")
    assert env["OTEL_METRICS_EXPORTER"] == "prometheus"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env


def test_root_mount_off(rendered_scenarios):
    ds = rendered_scenarios["no-root-mount-values.yaml"].one("DaemonSet")
    container = exporter(ds)
    assert not any(a.startswith("--path.rootfs") for a in container["args"])
    assert "root" not in {m["name"] for m in container["volumeMounts"]}
    assert "/" not in {v["hostPath"]["path"] for v in ds["spec"]["template"]["spec"]["volumes"] if "hostPath" in v}
    assert "--path.procfs=/host/proc" in container["args"]
    assert "not the host's" in rendered_scenarios["no-root-mount-values.yaml"].notes


def test_mount_propagation_is_configurable(render):
    ds = render({"hostRootFsMount": {"mountPropagation": ""}}).one("DaemonSet")
    (root,) = [m for m in exporter(ds)["volumeMounts"] if m["name"] == "root"]
    assert "mountPropagation" not in root and root["readOnly"] is True


def test_otlp_push_without_service(rendered_scenarios):
    rendered = rendered_scenarios["otlp-push-values.yaml"]
    assert "Service" not in rendered.kinds()
    ds = rendered.one("DaemonSet")
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert not any(k.startswith("prometheus.io/") for k in annotations)
    env = env_of(rendered, ds)
    assert env["OTEL_METRICS_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["OTEL_METRIC_EXPORT_INTERVAL"] == "30000"
    assert env["OTEL_SERVICE_NAME"] == "edge-host-metrics"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "k8s.namespace.name=monitoring,deployment.environment.name=production,k8s.cluster.name=edge-01"
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == {"secretKeyRef": {"name": "otlp-credentials", "key": "headers"}}
    policy = rendered.one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_scrape_annotations_go_on_pods_without_a_service(render):
    rendered = render({"service": {"enabled": False}})
    annotations = rendered.one("DaemonSet")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"


def test_monitors_scenario(rendered_scenarios):
    rendered = rendered_scenarios["monitors-values.yaml"]
    sm = rendered.one("ServiceMonitor")
    svc = rendered.one("Service")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert sm["spec"]["endpoints"][0]["interval"] == "30s"
    # With a monitor on, no prometheus.io annotations (they would double-scrape).
    assert not any(k.startswith("prometheus.io/") for k in svc["metadata"].get("annotations", {}))
    rule = rendered.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboard = [d for d in rendered.of_kind("ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert len(dashboard) == 1
    assert dashboard[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard[0]["metadata"]["annotations"]["grafana_folder"] == "Edge"


def test_podmonitor_scenario(rendered_scenarios):
    rendered = rendered_scenarios["podmonitor-values.yaml"]
    assert "Service" not in rendered.kinds()
    pm = rendered.one("PodMonitor")
    ds = rendered.one("DaemonSet")
    assert pm["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == exporter(ds)["ports"][0]["name"]
    assert not any(k.startswith("prometheus.io/") for k in ds["spec"]["template"]["metadata"]["annotations"])


def test_embedded_rules_and_dashboard_match_monitoring(rendered_scenarios):
    rendered = rendered_scenarios["monitors-values.yaml"]
    alerts = yaml.safe_load((REPO / "monitoring" / "alerts.yml").read_text())
    assert rendered.one("PrometheusRule")["spec"]["groups"] == alerts["groups"]
    (cm,) = [d for d in rendered.of_kind("ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert json.loads(cm["data"]["otel-bare-metal.json"]) == json.loads((REPO / "monitoring" / "dashboard.json").read_text())


@pytest.mark.parametrize("name", ["alerts.yml", "dashboard.json"])
def test_chart_copies_are_identical_to_monitoring(name):
    """Helm cannot read outside the chart: helm/otel-bare-metal/files/ keeps copies.
    Refresh with: cp monitoring/alerts.yml monitoring/dashboard.json helm/otel-bare-metal/files/"""
    assert (CHART_DIR / "files" / name).read_bytes() == (REPO / "monitoring" / name).read_bytes()


def test_hdhomerun_probe_deployment(rendered_scenarios):
    rendered = rendered_scenarios["hdhomerun-values.yaml"]
    (deploy,) = rendered.of_kind("Deployment")
    assert deploy["spec"]["replicas"] == 1
    container = exporter(deploy)
    args = container["args"]
    assert "--hdhomerun.device=192.168.1.50" in args and "--hdhomerun.device=1050ABCE" in args
    assert "--hdhomerun.discover-address=192.168.1.51" in args
    assert "--hdhomerun.allow-target=192.168.1.0/24" in args
    assert "--hdhomerun.timeout=3" in args
    assert "--collector.disable-defaults" in args and "--collector.hdhomerun" in args
    assert "--hdhomerun.discover" not in args
    pod = deploy["spec"]["template"]["spec"]
    assert not any("hostPath" in v for v in pod["volumes"])
    assert pod["hostNetwork"] is False
    # The DaemonSet does not dial tuners.
    assert not any(a.startswith("--hdhomerun") for a in exporter(rendered.one("DaemonSet"))["args"])
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    assert set(services) == {"obm-otel-bare-metal", "obm-otel-bare-metal-hdhomerun"}
    monitors = rendered.of_kind("ServiceMonitor")
    assert len(monitors) == 2
    for sm in monitors:
        matches = [s for s in services.values() if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert len(matches) == 1
    # Selectors do not overlap: the DaemonSet's Service does not select the Deployment's pods.
    ds_selector = services["obm-otel-bare-metal"]["spec"]["selector"]
    assert not ds_selector.items() <= deploy["spec"]["template"]["metadata"]["labels"].items()


def test_hdhomerun_only(rendered_scenarios):
    rendered = rendered_scenarios["hdhomerun-only-values.yaml"]
    assert "DaemonSet" not in rendered.kinds()
    deploy = rendered.one("Deployment")
    assert "--hdhomerun.discover" in exporter(deploy)["args"]
    assert deploy["spec"]["template"]["spec"]["hostNetwork"] is True


def test_tls_scheme_moves_probes_and_monitors(rendered_scenarios):
    rendered = rendered_scenarios["tls-values.yaml"]
    container = exporter(rendered.one("DaemonSet"))
    assert "--web.config.file=/etc/otel-bare-metal/web/web-config.yml" in container["args"]
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert rendered.one("PodMonitor")["spec"]["podMetricsEndpoints"][0]["scheme"] == "https"


def test_image_defaults_to_app_version(default_render, chart):
    image = exporter(default_render.one("DaemonSet"))["image"]
    assert image == f"ghcr.io/otel-bare-metal/otel-bare-metal:{chart.metadata['appVersion']}"


def test_image_digest_wins(render):
    digest = "sha256:" + "a" * 64
    image = exporter(render({"image": {"digest": digest}}).one("DaemonSet"))["image"]
    assert image == f"ghcr.io/otel-bare-metal/otel-bare-metal@{digest}"


# ---------------------------------------------------------------------------- golden render


def test_golden_default_render(default_render):
    """The defaults, rendered as release "obm" in namespace "monitoring".
    After an intended change: UPDATE_GOLDEN=1 pytest tests/chart, and review the diff."""
    golden = GOLDEN_DIR / "default.yaml"
    text = default_render.golden_text()
    if update_golden():
        golden.write_text(text)
    assert golden.exists(), "no golden file: run with UPDATE_GOLDEN=1"
    assert text == golden.read_text(), "the default render changed: review, then UPDATE_GOLDEN=1"


def test_readme_values_table_covers_every_top_level_value():
    readme = (CHART_DIR / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `")]
    for key in yaml.safe_load((CHART_DIR / "values.yaml").read_text()):
        assert any(f"`{key}" in row for row in table), f"{key} missing from the README values table"
