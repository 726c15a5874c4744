"""Classic naming against the real thing: Debian's node_exporter on the same fixture trees,
and hdhomerun_exporter's names (protocol doc §6, mdlayher/hdhomerun_exporter collector.go)."""

import shutil
import subprocess

import pytest

from helpers import FIXTURES, fetch, free_port, promtool_check_metrics, running_exporter, samples, wait_for_http

# Debian's node_exporter 1.5 also excludes /run, /mnt and /media by default; give both the same.
EXCLUDE = "^/(dev|proc|sys|var/lib/docker/.+)($|/)"
ARGS = (f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}",
        f"--collector.filesystem.mount-points-exclude={EXCLUDE}")

# statfs of the fixture directories reads the checkout's live disk: other processes may write
# between the two scrapes, so free space and free inodes are compared within a margin.
LIVE = {"node_filesystem_free_bytes": 256 << 20, "node_filesystem_avail_bytes": 256 << 20, "node_filesystem_files_free": 50_000}


@pytest.fixture(scope="module")
def node_exporter_samples():
    binary = shutil.which("prometheus-node-exporter")
    assert binary, "prometheus-node-exporter not found: scripts/test installs it"
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults", "--collector.cpu",
         "--collector.filesystem", f"--path.sysfs={FIXTURES / 'sys'}", *ARGS],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/metrics", proc=proc)
        text = fetch(f"http://127.0.0.1:{port}/metrics")[2].decode()
    finally:
        proc.terminate()
        proc.wait(10)
    return {k: v for k, v in samples(text).items() if k[0].startswith(("node_cpu", "node_filesystem", "node_scrape_collector"))}


@pytest.fixture(scope="module")
def classic_text():
    with running_exporter(*ARGS, "--metrics.naming=classic") as base:
        return fetch(base + "/metrics")[2].decode()


def labels_of(key):
    return dict(key[1])


def node_exporter_is_wrong(key) -> str | None:
    """The series node_exporter exports that we deliberately do not (docs/metrics.md)."""
    labels = labels_of(key)
    if labels.get("cpu") == "2":
        return "cpu2 is offline: /proc/stat has no cpu2 line, node_exporter invents zeros"
    if labels.get("mountpoint") in ("/srv/bind", "/srv/data-again"):
        return "a second view of a filesystem already exported (bind mount, device mounted twice)"
    if key[0] == "node_scrape_collector_duration_seconds":
        return "timing differs by nature"
    return None


def test_every_correct_node_exporter_series_is_exported_identically(node_exporter_samples, classic_text):
    ours = samples(classic_text)
    compared = 0
    for key, value in node_exporter_samples.items():
        if node_exporter_is_wrong(key):
            continue
        assert key in ours, f"missing {key}"
        margin = LIVE.get(key[0], 0)
        assert abs(ours[key] - value) <= margin, (key, ours[key], value)
        compared += 1
    assert compared == 74  # 3 CPUs × 10 series + 6 mounts × 7 series + the success pair
    theirs_names = {k[0] for k in node_exporter_samples}
    ours_node = {k for k in ours if k[0].startswith(("node_cpu", "node_filesystem", "node_scrape_collector"))}
    assert {k[0] for k in ours_node} == theirs_names, "same metric names"
    extra = [k for k in ours_node if k not in node_exporter_samples]
    assert extra == [], f"series node_exporter does not have: {extra}"


def test_the_deliberate_differences_are_the_documented_ones(node_exporter_samples):
    skipped = {node_exporter_is_wrong(k) for k in node_exporter_samples} - {None}
    assert len(skipped) == 3, "if node_exporter stops inventing CPUs or duplicating mounts, update the docs"


def test_classic_mode_has_no_scope_labels_and_is_promtool_clean(classic_text):
    assert "otel_scope" not in classic_text
    assert "system_cpu_time" not in classic_text, "classic mode replaces the names, it does not add to them"
    result = promtool_check_metrics(classic_text)
    assert result.returncode == 0 and not result.stdout and not result.stderr, result


def test_scope_labels_stay_off_in_classic_mode():
    with running_exporter(*ARGS, "--metrics.naming=classic", "--metrics.scope-labels") as base:
        assert b"otel_scope" not in fetch(base + "/metrics")[2]


# hdhomerun_exporter's metric names and label sets (collector.go); the device is the scrape's instance.
HDHOMERUN_EXPORTER = {
    "hdhomerun_device_info": {"model"},
    "hdhomerun_tuner_info": {"tuner", "channel", "lock"},
    "hdhomerun_tuner_signal_strength_ratio": {"tuner"},
    "hdhomerun_tuner_signal_to_noise_ratio": {"tuner"},
    "hdhomerun_tuner_symbol_error_ratio": {"tuner"},
    "hdhomerun_cablecard_bytes_per_second": set(),
    "hdhomerun_cablecard_overflow": set(),
    "hdhomerun_cablecard_resync": set(),
    "hdhomerun_network_packets_per_second": {"tuner"},
    "hdhomerun_network_errors": {"tuner"},
}


def test_probe_in_classic_mode_is_drop_in_for_hdhomerun_exporter():
    from otel_bare_metal.hdhomerun.simulator import Simulator
    from otel_bare_metal.hdhomerun.text import parse_tuner_debug

    with Simulator("127.0.0.1", 0, tuners=2, cablecard=True) as sim:
        with running_exporter("--metrics.naming=classic", "--hdhomerun.allow-target=127.0.0.0/8:*",
                              "--no-collector.cpu", "--no-collector.filesystem") as base:
            text = fetch(f"{base}/metrics?target={sim.address_text}")[2].decode()
        debug = parse_tuner_debug(sim.tuner_debug(1))
    s = samples(text)
    for name, labels in HDHOMERUN_EXPORTER.items():
        rows = [k for k in s if k[0] == name]
        assert rows, f"{name} missing"
        assert all(set(labels_of(k)) == labels for k in rows), (name, rows)
    assert "# TYPE hdhomerun_network_errors gauge" in text, "hdhomerun_exporter exports it as a gauge"
    ratio = s[("hdhomerun_tuner_signal_strength_ratio", (("tuner", "1"),))]
    assert abs(ratio - debug.tun.signal_strength / 100) <= 0.05
    assert promtool_check_metrics(text).returncode == 0


def test_configured_devices_in_classic_mode_carry_a_device_label():
    from otel_bare_metal.hdhomerun.simulator import Simulator

    with Simulator("127.0.0.1", 0, tuners=1) as a, Simulator("127.0.0.1", 0, tuners=1) as b:
        with running_exporter("--metrics.naming=classic", f"--hdhomerun.device={a.address_text}",
                              f"--hdhomerun.device={b.address_text}", "--no-collector.filesystem") as base:
            s = samples(fetch(base + "/metrics")[2].decode())
    devices = {labels_of(k)["device"] for k in s if k[0] == "hdhomerun_tuner_signal_strength_ratio"}
    assert devices == {a.address_text, b.address_text}
