"""What the chart README says about Pod Security holds for what the chart renders: the DaemonSet
needs the privileged level (hostPath), an HDHomeRun-only install without hostNetwork meets
restricted; and the HDHomeRun Deployment gets its own service.instance.id."""

from __future__ import annotations

from chart_support import CHART_DIR

README = (CHART_DIR / "README.md").read_text()


def _pods(rendered):
    return [(d["kind"], d["spec"]["template"]["spec"]) for d in rendered.docs if d["kind"] in ("DaemonSet", "Deployment")]


def _restricted_violations(pod: dict) -> list[str]:
    """The Pod Security Standards' baseline and restricted checks that can fail for this chart."""
    out = []
    if any("hostPath" in v for v in pod.get("volumes", [])):
        out.append("hostPath")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(key)
    psc = pod.get("securityContext", {})
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            out.append("privileged")
        if sc.get("allowPrivilegeEscalation", True):
            out.append("allowPrivilegeEscalation")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            out.append("runAsNonRoot")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
            out.append("capabilities")
        if (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            out.append("seccompProfile")
    return out


def test_readme_gives_the_level_and_the_label_command():
    assert "kubectl label namespace monitoring pod-security.kubernetes.io/enforce=privileged" in README
    assert "`privileged`" in README and "hostPath" in README


def test_the_daemonset_needs_privileged_and_only_for_host_access(default_render):
    (spec,) = [s for kind, s in _pods(default_render) if kind == "DaemonSet"]
    assert set(_restricted_violations(spec)) == {"hostPath"}  # the container itself is locked down


def test_an_hdhomerun_only_install_meets_restricted(render):
    rendered = render({"daemonset": {"enabled": False}, "hdhomerun": {"enabled": True, "devices": ["192.0.2.10"]}})
    (kind, spec), = _pods(rendered)
    assert kind == "Deployment" and _restricted_violations(spec) == []


def test_hdhomerun_deployment_has_its_own_instance_id(render):
    rendered = render({"hdhomerun": {"enabled": True, "devices": ["192.0.2.10"]}, "resourceAttributes": {"team.name": "tv"}})
    deployment = rendered.one("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    shared = rendered.one("ConfigMap")["data"]["OTEL_RESOURCE_ATTRIBUTES"]
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == f"{shared},service.instance.id=monitoring.obm-otel-bare-metal-hdhomerun"
    daemonset = rendered.one("DaemonSet")
    (ds_container,) = daemonset["spec"]["template"]["spec"]["containers"]
    assert "OTEL_RESOURCE_ATTRIBUTES" not in {e["name"] for e in ds_container.get("env", [])}
    # chosen by the user: left alone
    chosen = render({"hdhomerun": {"enabled": True, "devices": ["192.0.2.10"]},
                     "resourceAttributes": {"service.instance.id": "mine"}}).one("Deployment")
    assert "OTEL_RESOURCE_ATTRIBUTES" not in {e["name"] for e in chosen["spec"]["template"]["spec"]["containers"][0]["env"]}
