"""Mount selection, statfs figures, and the hung-mount watchdog (statfs injected)."""

import os
import subprocess
import threading
import time

import pytest

from helpers import FIXTURES
from otel_bare_metal.collectors.filesystem.source import (
    FilesystemSource,
    MountFilter,
    StatfsResult,
    StatfsWatchdog,
    host_mountpoint,
    os_statfs,
    select_mounts,
)
from otel_bare_metal.procfs import parse_mountinfo, read_mountinfo


def fixture_mounts():
    return read_mountinfo(str(FIXTURES / "proc")).mounts


def test_default_filter_drops_virtual_filesystems_and_container_paths():
    kept = select_mounts(fixture_mounts(), MountFilter().keep)
    points = [m.mountpoint for m in kept]
    assert points == ["/", "/run", "/data", "/home", "/mnt/with space", "/mnt/ro"]
    for dropped in ("/proc", "/sys", "/dev", "/sys/fs/cgroup", "/var/lib/docker/overlay2/abc/merged"):
        assert dropped not in points


def test_device_mounted_twice_and_bind_mount_give_one_series_each():
    kept = select_mounts(fixture_mounts(), MountFilter().keep)
    devices = [m.device for m in kept]
    assert devices.count("/dev/sdb1") == 1 and devices.count("/dev/sdb2") == 1
    assert [m.mountpoint for m in kept if m.device == "/dev/sdb2"] == ["/home"], "the filesystem's root mount wins"


def test_bind_mount_listed_first_still_loses_to_root_mount():
    table = parse_mountinfo(
        "33 22 8:18 /alice /srv/bind rw - ext4 /dev/sdb2 rw\n"
        "32 22 8:18 / /home rw - ext4 /dev/sdb2 rw\n"
    )
    assert [m.mountpoint for m in select_mounts(table.mounts, MountFilter().keep)] == ["/home"]


def test_include_and_exclude_patterns():
    f = MountFilter(mount_points_include="^/(data|home)$", fs_types_exclude="^xfs$")
    assert [m.mountpoint for m in select_mounts(fixture_mounts(), f.keep)] == ["/home"]


def test_bad_regex_is_a_clear_error():
    with pytest.raises(ValueError, match="mount-points-exclude"):
        MountFilter(mount_points_exclude="([")


def test_rootfs_prefix_is_stripped_from_container_view():
    assert host_mountpoint("/host/root/data", "/host/root") == "/data"
    assert host_mountpoint("/host/root", "/host/root") == "/"
    assert host_mountpoint("/data", "/host/root") == "/data"
    assert host_mountpoint("/data", "/") == "/data"


def fake_statfs(figures):
    def statfs(path):
        if path not in figures:
            raise FileNotFoundError(2, "No such file or directory", path)
        value = figures[path]
        if isinstance(value, threading.Event):
            value.wait(30)
            return StatfsResult(4096, 1, 1, 1, 1, 1)
        return value

    return statfs


def source_for(text, figures, timeout=1.0, rootfs="/"):
    table = parse_mountinfo(text)
    return FilesystemSource(
        procfs="/unused",
        rootfs=rootfs,
        watchdog=StatfsWatchdog(statfs=fake_statfs(figures), timeout=timeout),
        read_mounts=lambda procfs: table,
    )


def test_bytes_are_blocks_times_block_size():
    src = source_for("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n", {"/": StatfsResult(4096, 1000, 300, 200, 50, 20)})
    [fs] = src.read().filesystems
    assert (fs.size, fs.free, fs.avail, fs.files, fs.files_free) == (4_096_000, 1_228_800, 819_200, 50, 20)
    assert fs.error is None and not fs.hung


def test_statfs_on_rootfs_path_with_host_label():
    src = source_for("1 0 8:1 / /data rw - ext4 /dev/sda1 rw\n", {"/host/data": StatfsResult(1, 1, 1, 1, 1, 1)}, rootfs="/host")
    [fs] = src.read().filesystems
    assert fs.mount.mountpoint == "/data" and fs.error is None


def test_statfs_error_is_reported_per_mount_and_others_export():
    src = source_for(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 8:2 / /gone rw - ext4 /dev/sda2 rw\n",
        {"/": StatfsResult(1, 10, 5, 5, 1, 1)},
    )
    good, gone = src.read().filesystems
    assert good.error is None and good.size == 10
    assert gone.error == "ENOENT" and not gone.hung


def test_hung_mount_costs_at_most_the_timeout_then_is_skipped_until_it_answers():
    release = threading.Event()
    calls = []
    figures = {"/": StatfsResult(1, 10, 5, 5, 1, 1), "/nfs": release}
    inner = fake_statfs(figures)

    def counting(path):
        calls.append(path)
        return inner(path)

    table = parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:40 / /nfs rw - nfs srv:/x rw\n")
    src = FilesystemSource(watchdog=StatfsWatchdog(statfs=counting, timeout=0.3), read_mounts=lambda p: table)
    try:
        start = time.monotonic()
        first = src.read().filesystems  # the very first scrape
        elapsed_first = time.monotonic() - start
        assert elapsed_first < 0.3 + 0.5
        assert [(f.mount.mountpoint, f.error, f.hung) for f in first] == [("/", None, False), ("/nfs", "timeout", True)]

        start = time.monotonic()
        second = src.read().filesystems
        assert time.monotonic() - start < 0.25, "a known-hung mount must be skipped, not waited for"
        assert second[1].hung and calls.count("/nfs") == 1

        release.set()  # the server comes back: the stuck call returns
        deadline = time.monotonic() + 5
        while src.watchdog.hung() and time.monotonic() < deadline:
            time.sleep(0.01)
        third = src.read().filesystems
        assert third[1].error is None and not third[1].hung
        assert calls.count("/nfs") == 2
    finally:
        release.set()
        src.close()


def test_many_hung_mounts_do_not_starve_healthy_ones():
    release = threading.Event()
    lines, figures = [], {}
    for i in range(8):
        lines.append(f"{i + 2} 1 0:{40 + i} / /nfs{i} rw - nfs srv:/{i} rw")
        figures[f"/nfs{i}"] = release
    lines.append("1 0 8:1 / / rw - ext4 /dev/sda1 rw")
    figures["/"] = StatfsResult(1, 10, 5, 5, 1, 1)
    src = source_for("\n".join(lines) + "\n", figures, timeout=0.2)
    try:
        for _ in range(3):
            start = time.monotonic()
            result = {f.mount.mountpoint: f for f in src.read().filesystems}
            assert time.monotonic() - start < 0.2 + 0.5
        assert result["/"].error is None, "after the hung mounts are known, healthy mounts get answered"
        assert all(result[f"/nfs{i}"].error == "timeout" for i in range(8))
    finally:
        release.set()
        src.close()


def test_a_hung_mount_first_in_the_batch_does_not_hold_the_others_back():
    """A batch starts on one worker; when its first call blocks, the other workers join and
    answer the rest on the very first scrape."""
    release = threading.Event()
    lines = ["1 0 0:40 / /nfs rw - nfs srv:/x rw"] + [f"{i + 2} 1 8:{i + 1} / /d{i} rw - ext4 /dev/sd{i} rw" for i in range(5)]
    figures = {"/nfs": release} | {f"/d{i}": StatfsResult(1, 10, 5, 5, 1, 1) for i in range(5)}
    src = source_for("\n".join(lines) + "\n", figures, timeout=0.5)
    try:
        result = {f.mount.mountpoint: f for f in src.read().filesystems}
        assert result["/nfs"].hung
        assert [result[f"/d{i}"].error for i in range(5)] == [None] * 5
    finally:
        release.set()
        src.close()


def test_the_mount_table_is_parsed_again_when_it_changes(tmp_path):
    """The default reader caches the parsed table by its text: a mount or an unmount shows at once."""
    mountinfo = tmp_path / "proc" / "1" / "mountinfo"
    mountinfo.parent.mkdir(parents=True)
    figures = {"/": StatfsResult(1, 10, 5, 5, 1, 1), "/data": StatfsResult(1, 20, 5, 5, 1, 1)}
    src = FilesystemSource(procfs=str(tmp_path / "proc"), watchdog=StatfsWatchdog(statfs=fake_statfs(figures), timeout=1))
    root, data = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n", "2 1 8:2 / /data ro - xfs /dev/sdb1 rw\n"
    try:
        mountinfo.write_text(root)
        assert [f.mount.mountpoint for f in src.read().filesystems] == ["/"]
        mountinfo.write_text(root + data)
        [_, mounted] = src.read().filesystems
        assert (mounted.mount.mountpoint, mounted.mount.fstype, mounted.mount.readonly, mounted.size) == ("/data", "xfs", True, 20)
        mountinfo.write_text(root + "oops\n")
        stat = src.read()
        assert [f.mount.mountpoint for f in stat.filesystems] == ["/"] and len(stat.errors) == 1
        assert src.read().errors == stat.errors, "an unchanged table keeps reporting its bad line"
    finally:
        src.close()


def test_watchdog_rejects_non_positive_timeout():
    with pytest.raises(ValueError):
        StatfsWatchdog(timeout=0)


def test_real_statfs_agrees_with_df():
    """Cross-check against the system: GNU df's 1-byte blocks for /."""
    out = subprocess.run(["df", "-B1", "--output=size,avail,itotal", "/"], capture_output=True, text=True, check=True)
    size, avail, itotal = (int(x) for x in out.stdout.splitlines()[1].split())
    r = os_statfs("/")
    assert r.blocks * r.bsize == size
    assert abs(r.bavail * r.bsize - avail) < 64 * 1024 * 1024  # the disk may change between the two calls
    assert r.files == itotal


def test_real_source_reads_this_machine():
    src = FilesystemSource()
    try:
        stat = src.read()
    finally:
        src.close()
    root = [f for f in stat.filesystems if f.mount.mountpoint == "/"]
    assert root and root[0].error is None and root[0].size > 0
    assert root[0].size == os.statvfs("/").f_blocks * os.statvfs("/").f_bsize
