"""The OpenTelemetry SDK environment variables that pick and place the exporters.

Read exactly as the OpenTelemetry "Environment Variable Specification" says
(specification/configuration/sdk-environment-variables.md):

* An empty value is the same as an unset one.
* ``OTEL_SDK_DISABLED`` is a Boolean: only ``true`` (any case) is true; any other value but
  ``false`` is a warning and counts as false.
* ``OTEL_METRICS_EXPORTER`` is an Enum, here a comma-separated list (the specification allows
  one) of ``prometheus``, ``otlp``, ``console`` and ``none``.  An unknown value is a warning and
  is ignored (the deprecated ``logging`` is unknown, as the specification asks of new
  implementations).  ``none`` alone turns every exporter off.
* ``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``_PORT`` (String / Integer): a port that does not parse
  or is outside 0–65535 is a warning and is ignored.

Where we differ from the specification's defaults, and why:

* ``OTEL_METRICS_EXPORTER`` defaults to ``prometheus``, not ``otlp``: this is a node exporter
  whose users scrape it; pushing needs a receiver that most installs do not have.
* With ``OTEL_EXPORTER_PROMETHEUS_HOST`` unset we listen on every interface (``:9464``, as
  node_exporter does with ``:9100``), not on ``localhost``: an exporter only reachable from its
  own host is no use to the Prometheus server that scrapes it.  The port default, 9464, is the
  specification's.
* The endpoint variables (``OTEL_EXPORTER_OTLP_ENDPOINT`` …) configure OTLP but never switch it
  on: only ``OTEL_METRICS_EXPORTER`` chooses the exporters.  (Platforms set the endpoint for every
  pod; a second, pushed copy of the data must be asked for.)

The functions here are pure: they return the value and the warnings to log (each a
``logutil.Message``: constant text, values as fields), so the command line can use them
before logging is set up.
"""

from __future__ import annotations

from typing import Mapping

from otel_bare_metal.logutil import Message

EXPORTERS = ("prometheus", "otlp", "console")
DEFAULT_EXPORTERS = frozenset({"prometheus"})
DEFAULT_PORT = 9464


def _get(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name) or "").strip()


def sdk_disabled(environ: Mapping[str, str]) -> tuple[bool, list[Message]]:
    raw = _get(environ, "OTEL_SDK_DISABLED")
    if raw.lower() == "true":
        return True, []
    if raw and raw.lower() != "false":
        return False, [Message("not true or false; treating it as false", variable="OTEL_SDK_DISABLED", value=raw)]
    return False, []


def metrics_exporters(environ: Mapping[str, str]) -> tuple[frozenset[str], list[Message]]:
    """The exporters ``OTEL_METRICS_EXPORTER`` names (default: prometheus), and warnings."""
    raw = _get(environ, "OTEL_METRICS_EXPORTER")
    if not raw:
        return DEFAULT_EXPORTERS, []
    items = [item.strip().lower() for item in raw.split(",") if item.strip()]
    unknown = [item for item in items if item not in EXPORTERS and item != "none"]
    known = [item for item in items if item not in unknown]
    warnings = []
    if unknown:
        warnings.append(Message("ignoring unknown metrics exporters", variable="OTEL_METRICS_EXPORTER",
                                unknown=",".join(unknown), known="prometheus,otlp,console,none"))
    if not known:  # nothing usable: the setting is ignored, as for any unrecognised Enum value
        warnings.append(Message("no known metrics exporter; using the default", variable="OTEL_METRICS_EXPORTER",
                                default="prometheus"))
        return DEFAULT_EXPORTERS, warnings
    return frozenset(known) - {"none"}, warnings


def prometheus_listen_address(environ: Mapping[str, str], default: str = f":{DEFAULT_PORT}") -> tuple[str, list[Message]]:
    """The listen address ``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``_PORT`` describe, else ``default``.

    ``--web.listen-address`` (and its own variable) win over both; the caller arranges that."""
    host = _get(environ, "OTEL_EXPORTER_PROMETHEUS_HOST")
    raw_port = _get(environ, "OTEL_EXPORTER_PROMETHEUS_PORT")
    warnings = []
    default_host, _, default_port = default.rpartition(":")
    port = default_port
    if raw_port:
        if raw_port.isdigit() and 0 <= int(raw_port) <= 65535:
            port = str(int(raw_port))
        else:
            warnings.append(Message("not a port number (0-65535); ignoring it", variable="OTEL_EXPORTER_PROMETHEUS_PORT",
                                    value=raw_port))
    if not host:
        host = default_host
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}", warnings
