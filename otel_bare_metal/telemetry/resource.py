"""The OpenTelemetry resource: who is reporting.  Appears as ``target_info`` on /metrics."""

from __future__ import annotations

import os
import platform
from typing import Mapping

from opentelemetry.sdk.resources import OTELResourceDetector, Resource

from otel_bare_metal import __version__

_OS_TYPES = {"linux": "linux", "darwin": "darwin", "windows": "windows", "freebsd": "freebsd", "openbsd": "openbsd", "netbsd": "netbsd"}


def build_resource(environ: Mapping[str, str] | None = None) -> Resource:
    """Our defaults, overridden by ``OTEL_RESOURCE_ATTRIBUTES`` and then ``OTEL_SERVICE_NAME``.

    ``k8s.node.name`` / ``k8s.pod.name`` come from ``K8S_NODE_NAME`` / ``K8S_POD_NAME`` (the
    Helm chart sets them from the downward API).
    """
    env = os.environ if environ is None else environ
    attributes: dict[str, str] = {
        "service.name": "otel-bare-metal",
        "service.version": __version__,
        "host.name": platform.node(),
        "host.arch": _arch(platform.machine()),
        "os.type": _OS_TYPES.get(platform.system().lower(), platform.system().lower()),
    }
    for var, key in (("K8S_NODE_NAME", "k8s.node.name"), ("K8S_POD_NAME", "k8s.pod.name")):
        if env.get(var):
            attributes[key] = env[var]
    if environ is None:
        attributes.update({k: str(v) for k, v in OTELResourceDetector().detect().attributes.items()})
    else:
        attributes.update(_parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    if env.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = env["OTEL_SERVICE_NAME"]
    return Resource.create(attributes)


def _parse_resource_attributes(text: str) -> dict[str, str]:
    from urllib.parse import unquote

    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[key.strip()] = unquote(value.strip())
    return out


def _arch(machine: str) -> str:
    machine = machine.lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "x86", "i386": "x86",
            "armv7l": "arm32", "ppc64le": "ppc64", "s390x": "s390x"}.get(machine, machine)
