"""Classic naming against the real thing: the current node_exporter release (built from its Go
module by scripts/go-peers) on the same fixture trees, both with their default filters; and
hdhomerun_exporter's names (protocol doc §6, mdlayher/hdhomerun_exporter collector.go)."""

import subprocess

import pytest

from collector_support import go_peer
from helpers import FIXTURES, fetch, free_port, promtool_check_metrics, running_exporter, samples, stop_process, wait_for_http

pytestmark = pytest.mark.peers  # main interpreter only (scripts/test)

ARGS = (f"--path.procfs={FIXTURES / 'proc'}", f"--path.rootfs={FIXTURES / 'rootfs'}")

# statfs of the fixture directories reads the checkout's live disk: other processes may write
# between the two scrapes, so free space and free inodes are compared within a margin.
LIVE = {"node_filesystem_free_bytes": 256 << 20, "node_filesystem_avail_bytes": 256 << 20, "node_filesystem_files_free": 50_000}


def node_exporter_page(*args: str, tree: tuple[str, ...] = ARGS, collectors: tuple[str, ...] = ("cpu", "filesystem")) -> str:
    """One scrape of the real node_exporter with only ``collectors`` on, reading ``tree``."""
    port = free_port()
    proc = subprocess.Popen(
        [go_peer("node_exporter"), f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
         *(f"--collector.{c}" for c in collectors), f"--path.sysfs={FIXTURES / 'sys'}", *tree, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/metrics", proc=proc)
        return fetch(f"http://127.0.0.1:{port}/metrics")[2].decode()
    finally:
        stop_process(proc)


def filesystems_both_ways(tmp_path, mountinfo: str) -> tuple[dict, dict]:
    """(node_exporter's, ours in classic mode) filesystem samples for a tree whose
    ``1/mountinfo`` is ``mountinfo`` (the fixture rootfs under it)."""
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "stat").write_text((FIXTURES / "proc" / "stat").read_text())
    (proc / "1" / "mountinfo").write_text(mountinfo)
    tree = (f"--path.procfs={proc}", f"--path.rootfs={FIXTURES / 'rootfs'}")
    theirs = samples(node_exporter_page(tree=tree, collectors=("filesystem",)))
    with running_exporter(*tree, "--metrics.naming=classic", "--no-collector.cpu") as base:
        ours = samples(fetch(base + "/metrics")[2].decode())
    return theirs, ours


@pytest.fixture(scope="module")
def node_exporter_samples():
    text = node_exporter_page()
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
    if labels.get("mountpoint") in ("/srv/bind", "/srv/data-again"):
        return "a second view of a filesystem already exported (bind mount, device mounted twice)"
    if key[0] == "node_scrape_collector_duration_seconds":
        return "timing differs by nature"
    if key[0] == "node_filesystem_purgeable_bytes":
        return "purgeable space is an APFS (macOS) figure: always 0 on Linux"
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
    assert compared == 80  # 3 CPUs × 10 series + 6 mounts × 8 series + the success pair
    theirs_names = {k[0] for k in node_exporter_samples} - {"node_filesystem_purgeable_bytes"}
    ours_node = {k for k in ours if k[0].startswith(("node_cpu", "node_filesystem", "node_scrape_collector"))}
    assert {k[0] for k in ours_node} == theirs_names, "same metric names"
    extra = [k for k in ours_node if k not in node_exporter_samples]
    assert extra == [], f"series node_exporter does not have: {extra}"


def test_the_deliberate_differences_are_the_documented_ones(node_exporter_samples):
    skipped = {node_exporter_is_wrong(k) for k in node_exporter_samples} - {None}
    assert len(skipped) == 3, "if node_exporter stops duplicating mounts, update the docs"


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
    from otel_bare_metal.hdhr.simulator import Simulator
    from otel_bare_metal.hdhr.text import parse_tuner_debug

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


def hdhomerun_exporter_expects(sim) -> dict[tuple, float]:
    """What mdlayher/hdhomerun_exporter's collector.go would serve for this device, series for
    series: device_info{model}; per tuner tuner_info{tuner,channel,lock} = 1, the three ratios as
    percent / 100, network packets/s and errors; the CableCARD figures once (bits / 8).
    (The exporter cannot be built here: its module is refused by the Go proxy.  Its library is
    built and run for real against the simulator in tests/hdhr/test_go_library_peer.py.)"""
    from otel_bare_metal.hdhr.text import parse_tuner_debug

    model = sim._system_values()["/sys/model"]
    out = {("hdhomerun_device_info", (("model", model),)): 1.0}
    for n in range(sim.tuners):
        text = sim.tuner_debug(n)
        d = parse_tuner_debug(text)
        # its library keeps ch= and lock= as the device sent them ("none" for an idle tuner)
        tun = dict(kv.split("=", 1) for kv in text.splitlines()[0].split()[1:])
        t = (("tuner", str(n)),)
        out[("hdhomerun_tuner_info", (("channel", tun["ch"]), ("lock", tun["lock"]), ("tuner", str(n))))] = 1.0
        out[("hdhomerun_tuner_signal_strength_ratio", t)] = d.tun.signal_strength / 100
        out[("hdhomerun_tuner_signal_to_noise_ratio", t)] = d.tun.snr_quality / 100
        out[("hdhomerun_tuner_symbol_error_ratio", t)] = d.tun.symbol_quality / 100
        out[("hdhomerun_network_packets_per_second", t)] = float(d.net.pps)
        out[("hdhomerun_network_errors", t)] = float(d.net.err)
        if n == 0 and d.cc is not None:
            out[("hdhomerun_cablecard_bytes_per_second", ())] = d.cc.bps / 8
            out[("hdhomerun_cablecard_overflow", ())] = float(d.cc.overflow)
            out[("hdhomerun_cablecard_resync", ())] = float(d.cc.resync)
    return out


@pytest.mark.parametrize("cablecard", [False, True])
def test_probe_in_classic_mode_matches_hdhomerun_exporter_series_for_series(cablecard):
    from otel_bare_metal.hdhr.simulator import Simulator

    with Simulator("127.0.0.1", 0, tuners=3, cablecard=cablecard, clock=lambda: 1234.5) as sim:
        with running_exporter("--metrics.naming=classic", "--hdhomerun.allow-target=127.0.0.0/8:*",
                              "--no-collector.cpu", "--no-collector.filesystem") as base:
            ours = samples(fetch(f"{base}/metrics?target={sim.address_text}")[2].decode())
        expected = hdhomerun_exporter_expects(sim)
    theirs_names = {k[0] for k in expected}
    assert {k: v for k, v in ours.items() if k[0] in theirs_names} == expected
    assert any(v not in (0.0, 1.0) for v in expected.values()), "the simulator gave real figures"


def test_configured_devices_in_classic_mode_carry_a_device_label():
    from otel_bare_metal.hdhr.simulator import Simulator

    with Simulator("127.0.0.1", 0, tuners=1) as a, Simulator("127.0.0.1", 0, tuners=1) as b:
        with running_exporter("--metrics.naming=classic", f"--hdhomerun.device={a.address_text}",
                              f"--hdhomerun.device={b.address_text}", "--no-collector.filesystem") as base:
            s = samples(fetch(base + "/metrics")[2].decode())
    devices = {labels_of(k)["device"] for k in s if k[0] == "hdhomerun_tuner_signal_strength_ratio"}
    assert devices == {a.address_text, b.address_text}


# ----------------------------------------------------------------------------- filters, as node_exporter 1.8+


def mountpoints(text: str) -> set[str]:
    return {dict(k[1])["mountpoint"] for k in samples(text) if k[0] == "node_filesystem_device_error"}


def test_include_replaces_the_default_exclude_as_node_exporter_does():
    """/proc is excluded by default (mount point and type); an include pattern replaces both
    defaults, so it comes back, exactly as in node_exporter."""
    include = ("--collector.filesystem.mount-points-include=^/(proc|data)$",
               "--collector.filesystem.fs-types-include=^(proc|xfs)$")
    theirs = mountpoints(node_exporter_page(*include))
    with running_exporter(*ARGS, "--metrics.naming=classic", *include) as base:
        ours = mountpoints(fetch(base + "/metrics")[2].decode())
    assert "/proc" in theirs and "/data" in theirs
    assert ours == theirs - {"/srv/data-again"}  # the device mounted twice: exported once (see above)


@pytest.mark.parametrize("what", ["mount-points", "fs-types"])
def test_include_with_exclude_is_a_start_up_error_in_both(what):
    args = (f"--collector.filesystem.{what}-include=^/data$", f"--collector.filesystem.{what}-exclude=^/x$")
    theirs = subprocess.run([go_peer("node_exporter"), f"--web.listen-address=127.0.0.1:{free_port()}", *ARGS, *args],
                            capture_output=True, text=True, timeout=30)
    assert theirs.returncode != 0 and "mutually exclusive" in theirs.stderr
    import sys

    ours = subprocess.run([sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{free_port()}",
                           *ARGS, *args], capture_output=True, text=True, timeout=30)
    assert ours.returncode == 2 and "mutually exclusive" in ours.stderr, ours.stderr


def test_emergency_ro_counts_as_read_only(tmp_path):
    """ext4 flags a superblock emergency_ro after errors; node_exporter 1.8+ reports the mount
    read-only, and so do we."""
    theirs, ours = filesystems_both_ways(tmp_path, (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
        "30 22 8:17 / /data rw,noatime shared:20 - ext4 /dev/sdb1 rw,emergency_ro\n"))
    key = ("node_filesystem_readonly", (("device", "/dev/sdb1"), ("device_error", ""), ("fstype", "ext4"), ("mountpoint", "/data")))
    assert theirs[key] == 1 and ours[key] == 1


# ----------------------------------------------------------------------------- node_filesystem_mount_info


def mount_info(s: dict) -> dict:
    return {k: v for k, v in s.items() if k[0] == "node_filesystem_mount_info"}


def test_mount_info_matches_node_exporter_on_the_fixtures(node_exporter_samples, classic_text):
    theirs = {k: v for k, v in mount_info(node_exporter_samples).items() if not node_exporter_is_wrong(k)}
    ours = mount_info(samples(classic_text))
    assert ours == theirs
    assert len(ours) == 6 and set(ours.values()) == {1.0}
    assert ("node_filesystem_mount_info", (("device", "/dev/sdb1"), ("major", "8"), ("minor", "17"), ("mountpoint", "/data"))) in ours
    assert {labels_of(k)["mountpoint"] for k in mount_info(node_exporter_samples)} - {labels_of(k)["mountpoint"] for k in ours} \
        == {"/srv/bind"}, "the only mount left out is the bind mount (/srv/data-again has no directory: statfs fails there)"


def test_mount_info_for_failing_mounts_and_wide_device_numbers_matches_node_exporter(tmp_path):
    """Neither exports mount_info for a mount whose statfs fails (here: its directory is missing
    under the rootfs); both print device numbers in decimal, minors past 255 included."""
    theirs, ours = filesystems_both_ways(tmp_path, (
        "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
        "30 22 259:65537 / /data rw,noatime shared:20 - xfs /dev/nvme1n1p1 rw\n"
        "31 22 0:53 / /gone rw,relatime shared:21 - nfs4 server:/export rw\n"))
    assert mount_info(ours) == mount_info(theirs)
    assert {(labels_of(k)["mountpoint"], labels_of(k)["major"], labels_of(k)["minor"]) for k in mount_info(ours)} \
        == {("/", "259", "2"), ("/data", "259", "65537")}
    gone = [k for k in ours if k[0] == "node_filesystem_device_error" and labels_of(k)["mountpoint"] == "/gone"]
    assert [ours[k] for k in gone] == [1.0], "the failing mount is there, as an error"


def test_mount_info_is_not_exported_in_otel_mode():
    with running_exporter(*ARGS) as base:
        text = fetch(base + "/metrics")[2].decode()
    assert "system_filesystem_limit_bytes" in text
    assert "mount_info" not in text and "device_major" not in text
