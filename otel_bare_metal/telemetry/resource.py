"""The OpenTelemetry resource: who is reporting.  Appears as ``target_info`` on /metrics."""

from __future__ import annotations

import os
import platform
import uuid
from typing import Mapping

from opentelemetry.sdk.resources import OTELResourceDetector, Resource

from otel_bare_metal import __version__

#: The semantic conventions every name and attribute of this exporter follows (the resource's and
#: every meter's schema URL; docs/metrics.md, "Semantic conventions").
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"

#: The namespace the semantic conventions give for a ``service.instance.id`` derived, as a
#: UUID v5, from an inherent unique id (service.instance.id in the resource conventions).
SERVICE_INSTANCE_NAMESPACE = uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320")

_OS_TYPES = {"linux": "linux", "darwin": "darwin", "windows": "windows", "freebsd": "freebsd", "openbsd": "openbsd", "netbsd": "netbsd"}


def build_resource(environ: Mapping[str, str] | None = None) -> Resource:
    """Our defaults, overridden by ``OTEL_RESOURCE_ATTRIBUTES`` and then ``OTEL_SERVICE_NAME``.

    ``k8s.node.name`` / ``k8s.pod.name`` come from ``K8S_NODE_NAME`` / ``K8S_POD_NAME`` (the
    Helm chart sets them from the downward API).  ``service.instance.id``, unless given in
    ``OTEL_RESOURCE_ATTRIBUTES``, is :func:`service_instance_id` of the result: the same on
    every start on the same node or host.
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
    if not attributes.get("service.instance.id"):
        attributes["service.instance.id"] = service_instance_id(attributes)
    return Resource.create(attributes, schema_url=SCHEMA_URL)


def service_instance_id(attributes: Mapping[str, str]) -> str:
    """A UUID v5, in the semantic conventions' namespace, of the node the exporter runs for
    (``k8s.node.name``, else ``host.name``).

    The conventions recommend a random UUID unless stability is wanted, and then a UUID v5 of
    an inherent unique id.  One exporter runs per host (a DaemonSet pod per node), so the node or
    host is that id; a random one would start a new ``instance`` and new series at every
    restart.  The name itself stays out of the id (the conventions treat such data as
    confidential unless exposed on purpose; ``host.name`` is, beside it).  Two exporters with
    the same ``service.name`` on one host must be told apart through ``OTEL_RESOURCE_ATTRIBUTES``
    (``service.instance.id=…``).
    """
    source = attributes.get("k8s.node.name") or attributes.get("host.name") or ""
    return str(uuid.uuid5(SERVICE_INSTANCE_NAMESPACE, source))


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
