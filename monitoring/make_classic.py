#!/usr/bin/env python3
"""Build dashboard-classic.json from dashboard.json: the same dashboard for classic naming.

``--metrics.naming classic`` exports node_exporter's and hdhomerun_exporter's names and labels
(docs/metrics.md).  The classic dashboard keeps the OpenTelemetry one's rows, panels, titles,
ids, positions, units and options; only the queries, their legends and a few descriptions
change, from the table below.  A panel of dashboard.json without an entry here (or an entry
without a panel) is an error, so the two dashboards cannot drift apart silently.

The alert rules are not generated: the classic expressions differ in shape (used space is
size - free, read-only is a series instead of a label, there is no hung-mount series), so
alerts-classic.yml is written by hand and a test keeps its alert names in step with alerts.yml.

    python monitoring/make_classic.py           # rewrite dashboard-classic.json
    python monitoring/make_classic.py --check   # exit 1 when it is out of date

After running it, copy the result into the Helm chart:
    cp monitoring/dashboard-classic.json helm/otel-bare-metal/files/
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "dashboard.json"
TARGET = HERE / "dashboard-classic.json"

SEL = 'job=~"$job",instance=~"$instance"'
HDH = SEL + ',device=~"$device"'
RATE = "[$__rate_interval]"

# Configured devices on /metrics carry `device`; /probe has none and its `instance` names the
# device: legends show both.
DEV = "{{instance}} {{device}}"
TUNER = DEV + " tuner {{tuner}}"
FS = "{{instance}} {{mountpoint}}"


def used(sel: str = SEL) -> str:
    """Space used, as node_exporter's series give it: size - free (free includes root's reserve)."""
    return f"node_filesystem_size_bytes{{{sel}}} - node_filesystem_free_bytes{{{sel}}}"


def utilization(sel: str = SEL) -> str:
    """used / (used + available to non-root users), as df shows it."""
    return f"({used(sel)}) / ({used(sel)} + node_filesystem_avail_bytes{{{sel}}})"


DASHBOARD = {
    "uid": "otel-bare-metal-classic",
    "title": "otel-bare-metal: host and HDHomeRun (classic names)",
    "description": "CPU, filesystems and HDHomeRun tuners from the otel-bare-metal exporter with "
                   "--metrics.naming classic (node_exporter and hdhomerun_exporter names).",
    "tags": ["otel-bare-metal", "node", "hdhomerun", "classic"],
}

VARIABLES = {
    # every job: host exporters (collector success) and /probe fleet jobs (hdhomerun_up only)
    "job": 'label_values({__name__=~"node_scrape_collector_success|hdhomerun_up"}, job)',
    "instance": 'label_values({__name__=~"node_scrape_collector_success|hdhomerun_up",job=~"$job"}, instance)',
    "device": 'label_values(hdhomerun_up{job=~"$job"}, device)',
}

# Panel title → (targets as (expr, legendFormat) in refId order, new description or None).
PANELS: dict[str, tuple[list[tuple[str, str]], str | None]] = {
    "Targets up": ([(f"up{{{SEL}}}", "{{instance}}")], None),
    "Collector success": ([(f"node_scrape_collector_success{{{SEL}}}", "{{instance}} {{collector}}")], None),
    "Collector duration": ([(f"node_scrape_collector_duration_seconds{{{SEL}}}", "{{instance}} {{collector}}")], None),
    "Exporter CPU": ([(f"sum by (instance) (rate(process_cpu_seconds_total{{{SEL}}}{RATE}))", "{{instance}}")], None),
    "Exporter memory": ([(f"process_resident_memory_bytes{{{SEL}}}", "{{instance}} resident"),
                         (f"process_virtual_memory_bytes{{{SEL}}}", "{{instance}} virtual")], None),
    "Exporter file descriptors": ([(f"process_open_fds{{{SEL}}} / process_max_fds{{{SEL}}}", "{{instance}} used"),
                                   (f"process_max_fds{{{SEL}}}", "{{instance}} limit")], None),
    "Exporter uptime and version": (
        [(f"(time() - process_start_time_seconds{{{SEL}}}) * on (job, instance) group_left (version, revision) "
          f"otel_bare_metal_build_info{{{SEL}}}", "{{instance}} {{version}}")],
        None,
    ),
    "CPU by mode": (
        [(f"sum by (mode) (rate(node_cpu_seconds_total{{{SEL}}}{RATE})) / scalar(count(node_cpu_seconds_total{{{SEL},mode=\"idle\"}}))",
          "{{mode}}")],
        "Share of the selected hosts' CPU time spent in each mode (from /proc/stat; irq is the kernel's name for interrupt).",
    ),
    "CPU busy by instance": (
        [(f"1 - avg by (instance) (rate(node_cpu_seconds_total{{{SEL},mode=\"idle\"}}{RATE}))", "{{instance}}")],
        None,
    ),
    "Logical CPUs": (
        [(f"count by (instance) (node_cpu_seconds_total{{{SEL},mode=\"idle\"}})", "{{instance}}")],
        "CPUs listed in /proc/stat (classic naming has no CPU-count series).",
    ),
    "Guest time": ([(f"sum by (instance) (rate(node_cpu_guest_seconds_total{{{SEL}}}{RATE}))", "{{instance}}")], None),
    "Filesystem utilization": (
        [(utilization(), FS)],
        "used / (used + available), as df shows it: used = size - free (node_filesystem_free_bytes includes root's reserve).",
    ),
    "Free space and 24 h forecast": (
        [(f"node_filesystem_avail_bytes{{{SEL}}}", FS + " free"),
         (f"predict_linear(node_filesystem_avail_bytes{{{SEL}}}[6h], 24 * 3600)", FS + " free in 24 h (forecast)")],
        None,
    ),
    "Filesystem size and usage": (
        [(f"node_filesystem_size_bytes{{{SEL}}}", FS + " size"), (used(), FS + " used")],
        None,
    ),
    "Inodes used": ([(f"1 - node_filesystem_files_free{{{SEL}}} / node_filesystem_files{{{SEL}}}", FS)], None),
    "Mount errors and hung mounts": (
        [(f"node_filesystem_device_error{{{SEL}}} == 1", FS + " error or hung")],
        "Mounts where statfs failed or did not answer within the timeout (classic naming has one series for both: node_filesystem_device_error).",
    ),
    "Read-only mounts": (
        # node_filesystem_mount_info adds the device numbers (major, minor), by which node_exporter's
        # disk series (node_disk_info) name the same block device
        [(f"(node_filesystem_size_bytes{{{SEL}}} and node_filesystem_readonly{{{SEL}}} == 1)"
          f" * on (job, instance, device, mountpoint) group_left (major, minor) node_filesystem_mount_info{{{SEL}}}",
          FS + " ({{fstype}}, {{major}}:{{minor}})")],
        "Mounts that are read-only (mount or superblock options), with their size and device numbers "
        "(major:minor, from node_filesystem_mount_info).",
    ),
    "Devices up": ([(f"hdhomerun_up{{{HDH}}}", DEV)], None),
    "Devices": ([(f"hdhomerun_device_info{{{HDH}}}", ""), (f"hdhomerun_tuners{{{HDH}}}", "")], None),
    "Tuners": ([(f"hdhomerun_tuner_info{{{HDH}}}", "")], None),
    "Signal strength": ([(f"hdhomerun_tuner_signal_strength_ratio{{{HDH}}}", TUNER)], None),
    "Signal-to-noise quality": ([(f"hdhomerun_tuner_signal_to_noise_ratio{{{HDH}}}", TUNER)], None),
    "Symbol quality": (
        [(f"hdhomerun_tuner_symbol_error_ratio{{{HDH}}}", TUNER)],
        "hdhomerun_exporter's name for symbol quality (seq / 100): 1 means no symbol errors.",
    ),
    "Transport and CRC errors": (
        [(f"rate(hdhomerun_tuner_transport_errors_total{{{HDH}}}{RATE})", TUNER + " transport"),
         (f"rate(hdhomerun_tuner_crc_errors_total{{{HDH}}}{RATE})", TUNER + " CRC")],
        None,
    ),
    "Network errors, resyncs and overflows": (
        [(f"rate(hdhomerun_network_errors{{{HDH}}}{RATE})", TUNER + " network errors"),
         (f"rate(hdhomerun_tuner_resync_total{{{HDH}}}{RATE})", TUNER + " resyncs"),
         (f"rate(hdhomerun_tuner_overflow_total{{{HDH}}}{RATE})", TUNER + " overflows")],
        "Per second (hdhomerun_network_errors is a gauge in hdhomerun_exporter's naming, but counts up like a counter).",
    ),
    "Stream rates": (
        [(f"hdhomerun_tuner_raw_bytes_per_second{{{HDH}}}", TUNER + " raw"),
         (f"hdhomerun_tuner_transport_bytes_per_second{{{HDH}}}", TUNER + " transport"),
         (f"hdhomerun_network_bytes_per_second{{{HDH}}}", TUNER + " network")],
        None,
    ),
    "Network packet rate and stream stop reason": (
        [(f"hdhomerun_network_packets_per_second{{{HDH}}}", TUNER + " packets/s"),
         (f"hdhomerun_network_stop_reason{{{HDH}}}", TUNER + " stop reason")],
        None,
    ),
    "CableCARD": (
        [(f"hdhomerun_cablecard_bytes_per_second{{{HDH}}}", DEV + " rate"),
         (f"rate(hdhomerun_cablecard_resync{{{HDH}}}{RATE})", DEV + " resyncs/s"),
         (f"rate(hdhomerun_cablecard_overflow{{{HDH}}}{RATE})", DEV + " overflows/s")],
        None,
    ),
    "HDHomeRun scrape duration": ([(f"hdhomerun_scrape_duration_seconds{{{HDH}}}", DEV)], None),
}


def _panels(dashboard: dict):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def classic(otel: dict) -> dict:
    """The classic dashboard built from the OpenTelemetry one."""
    out = copy.deepcopy(otel)
    out.update(copy.deepcopy(DASHBOARD))
    for variable in out["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = VARIABLES[variable["name"]]
        variable["query"]["query"] = query
        variable["definition"] = query
    seen = set()
    for panel in _panels(out):
        if panel["type"] == "row":
            continue
        title = panel["title"]
        if title not in PANELS:
            raise SystemExit(f"make_classic.py: panel {title!r} of dashboard.json has no classic queries in PANELS")
        seen.add(title)
        targets, description = PANELS[title]
        old = panel["targets"]
        new = []
        for i, (expr, legend) in enumerate(targets):
            target = copy.deepcopy(old[min(i, len(old) - 1)])
            target["refId"] = chr(ord("A") + i)
            target["expr"] = expr
            target["legendFormat"] = legend
            new.append(target)
        panel["targets"] = new
        if description is not None:
            panel["description"] = description
    missing = set(PANELS) - seen
    if missing:
        raise SystemExit(f"make_classic.py: PANELS names panels dashboard.json does not have: {sorted(missing)}")
    return out


def render(otel_text: str) -> str:
    return json.dumps(classic(json.loads(otel_text)), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render(SOURCE.read_text())
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.name} is out of date: run python monitoring/make_classic.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
