"""/proc/stat and mountinfo parsers, from strings and from the fixture tree; the watched mount table on
the real kernel."""

import os
import subprocess
import threading
import time

import pytest

from helpers import FIXTURES
from otel_bare_metal.procfs import (
    MountTableFile,
    NotRegularFile,
    on_procfs,
    ParseError,
    parse_cpu_line,
    parse_mountinfo,
    parse_stat,
    read_file,
    read_mountinfo,
    read_stat,
    unescape_octal,
)


def test_ten_column_kernel_with_guest_time():
    stat = parse_stat("cpu  1 2 3 4\ncpu0 100 20 30 4000 50 6 7 8 90 10\n", user_hz=100)
    assert stat.errors == []
    [cpu] = stat.cpus
    assert cpu.cpu == 0
    assert cpu.modes == {"user": 1.0, "nice": 0.2, "system": 0.3, "idle": 40.0, "iowait": 0.5,
                         "irq": 0.06, "softirq": 0.07, "steal": 0.08}
    assert (cpu.guest, cpu.guest_nice) == (0.9, 0.1)


def test_four_column_kernel_has_only_four_modes():
    stat = parse_stat("cpu0 10 20 30 40\ncpu1 1 2 3 4\n", user_hz=100)
    assert [c.modes for c in stat.cpus] == [
        {"user": 0.1, "nice": 0.2, "system": 0.3, "idle": 0.4},
        {"user": 0.01, "nice": 0.02, "system": 0.03, "idle": 0.04},
    ]
    assert all(c.guest is None and c.guest_nice is None for c in stat.cpus)


@pytest.mark.parametrize("columns,last_mode", [(5, "iowait"), (7, "softirq"), (8, "steal")])
def test_intermediate_kernels(columns, last_mode):
    line = "cpu0 " + " ".join(str(i) for i in range(1, columns + 1))
    cpu = parse_cpu_line(line, 1)
    assert list(cpu.modes)[-1] == last_mode
    assert len(cpu.modes) == columns


def test_nine_columns_guest_without_guest_nice():
    cpu = parse_cpu_line("cpu0 1 2 3 4 5 6 7 8 9", 1)
    assert cpu.guest == 9 and cpu.guest_nice is None


def test_extra_future_columns_are_ignored():
    cpu = parse_cpu_line("cpu0 1 2 3 4 5 6 7 8 9 10 11 12", 1)
    assert cpu.guest_nice == 10 and len(cpu.modes) == 8


def test_user_hz_is_applied():
    assert parse_cpu_line("cpu0 250 0 0 0", 250).modes["user"] == 1.0
    assert parse_cpu_line("cpu0 250 0 0 0", 100).modes["user"] == 2.5


def test_cpu_gaps_keep_kernel_numbering():
    stat = parse_stat("cpu 0 0 0 0\ncpu0 1 1 1 1\ncpu2 1 1 1 1\ncpu7 1 1 1 1\n", 100)
    assert [c.cpu for c in stat.cpus] == [0, 2, 7]


def test_256_cpus():
    text = "cpu 1 1 1 1\n" + "".join(f"cpu{i} {i} 0 {i} {1000 + i} 0 0 0 0 0 0\n" for i in range(256))
    stat = parse_stat(text, 100)
    assert [c.cpu for c in stat.cpus] == list(range(256))
    assert stat.cpus[255].modes["idle"] == 12.55


@pytest.mark.parametrize(
    "bad",
    [
        "cpu0 1 2 3",  # too few columns
        "cpu0 1 2 x 4",  # not a number
        "cpu0 1 -2 3 4",  # negative
        "cpux 1 2 3 4",  # bad id
        "cpu0 1 2 3 4.5",  # fraction
        "cpu0 1 2 3 ４",  # non-ASCII digit
    ],
)
def test_malformed_line_is_reported_by_name_and_others_survive(bad):
    stat = parse_stat(f"cpu 1 1 1 1\n{bad}\ncpu1 1 2 3 4\n", 100)
    assert [c.cpu for c in stat.cpus] == [1]
    assert len(stat.errors) == 1 and repr(bad) in stat.errors[0]
    with pytest.raises(ParseError, match="line"):
        parse_cpu_line(bad, 100)


@pytest.mark.parametrize("line", [
    "cpu0 1 2 3 4",
    "cpu7 10 20 30 40 50 60 70 80 90 100",
    "cpu12 10 20 30 40 50 60 70 80 90 100 110 120",  # columns a future kernel adds
    "cpu3\t1\t2  3 4 5 ",  # tabs, runs of blanks, a trailing blank
    "cpu0012 00 1 2 3 4 5 6 7 8",  # leading zeros
    "cpu1 1 2 3 4 5 6 7 8 9 10 " + "1" * 25,  # an over-long column past the tenth is ignored
    "cpu1 1 2 3 4\x0b5",  # whitespace the fast match leaves to the slow path
    "cpu1 " + "9" * 20 + " 1 1 1",  # the largest tick count accepted
])
def test_the_fast_and_the_careful_cpu_line_parsers_agree(line):
    from otel_bare_metal.procfs import _parse_cpu_line_slowly

    assert parse_cpu_line(line, 100) == _parse_cpu_line_slowly(line, 100)


def test_duplicate_cpu_line_is_an_error():
    stat = parse_stat("cpu0 1 1 1 1\ncpu0 2 2 2 2\n", 100)
    assert len(stat.cpus) == 1 and stat.cpus[0].modes["user"] == 0.01
    assert "duplicate" in stat.errors[0]


def test_non_cpu_lines_and_summary_are_skipped():
    stat = parse_stat("cpu 9 9 9 9\nintr 1 2 3\nctxt 5\nsoftirq 1 2\n", 100)
    assert stat.cpus == [] and stat.errors == []


def test_fixture_tree_is_read_as_ticks_over_user_hz():
    stat = read_stat(str(FIXTURES / "proc"), 100)
    assert [c.cpu for c in stat.cpus] == [0, 1, 3]
    cpu0 = stat.cpus[0]
    assert cpu0.modes["user"] == 11.32 and cpu0.modes["idle"] == 113117.18
    assert cpu0.guest == 1.2 and cpu0.guest_nice == 0.07


def test_real_proc_stat_parses_cleanly():
    stat = read_stat("/proc", 100)
    assert stat.errors == [] and len(stat.cpus) >= 1


# ----------------------------------------------------------------------------- mountinfo

def test_octal_escapes():
    assert unescape_octal(r"/mnt/with\040space") == "/mnt/with space"
    assert unescape_octal(r"/a\011tab\012nl\134back") == "/a\ttab\nnl\\back"
    assert unescape_octal("/plain") == "/plain"
    # bytes that are not UTF-8 survive as surrogate escapes and round-trip
    odd = unescape_octal(r"/x\377y")
    assert odd.encode("utf-8", "surrogateescape") == b"/x\xffy"
    # multi-byte UTF-8 written as escapes decodes to the character
    assert unescape_octal(r"/caf\303\251") == "/café"
    # \4xx and above are not byte escapes (found by the fuzz test): left as they are
    assert unescape_octal(r"/x\777y") == r"/x\777y"


def test_mountinfo_fields():
    table = parse_mountinfo(
        "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
        "37 35 98:1 / /m\\040n ro,noatime - xfs /dev/sd\\040x rw\n"
        "38 35 98:2 / /super rw shared:3 master:2 - ext4 /dev/sdc ro,errors=remount-ro\n"
    )
    assert table.errors == []
    a, b, c = table.mounts
    assert (a.mountpoint, a.root, a.fstype, a.device, a.readonly, a.major, a.minor) == ("/mnt2", "/mnt1", "ext3", "/dev/root", False, 98, 0)
    assert (b.mountpoint, b.device, b.readonly) == ("/m n", "/dev/sd x", True)
    assert c.readonly, "superblock remounted read-only must count as read-only"


def test_malformed_mountinfo_line_is_reported_and_skipped():
    table = parse_mountinfo("garbage line here\n22 1 8:1 / / rw - ext4 /dev/sda1 rw\n1 2 3 4 5 6 7\n")
    assert [m.mountpoint for m in table.mounts] == ["/"]
    assert len(table.errors) == 2 and "garbage line here" in table.errors[0]


@pytest.mark.parametrize("numbers", ["8", "8:x", "8:1:2", "-1:0", "8:" + "9" * 5000])
def test_device_numbers_that_are_not_two_decimals_make_the_line_malformed(numbers):
    table = parse_mountinfo(f"22 1 {numbers} / /bad rw - ext4 /dev/sda1 rw\n23 1 259:65536 / /ok rw - ext4 /dev/nvme0n1p1 rw\n")
    assert [(m.mountpoint, m.major, m.minor) for m in table.mounts] == [("/ok", 259, 65536)]
    assert len(table.errors) == 1 and table.errors[0].startswith("malformed mountinfo line '22 1 " + numbers[:50])


def test_fixture_mountinfo():
    mounts = read_mountinfo(str(FIXTURES / "proc")).mounts
    assert "/mnt/with space" in [m.mountpoint for m in mounts]
    assert [m.readonly for m in mounts if m.mountpoint == "/mnt/ro"] == [True]


def test_mountinfo_falls_back_to_self(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    assert [m.device for m in read_mountinfo(str(tmp_path)).mounts] == ["/dev/sda1"]


# ----------------------------------------------------------------------------- hostile input

@pytest.mark.parametrize("bad", [
    "cpu0 " + "9" * 5000 + " 2 3 4",  # past int()'s 4 300-digit limit
    "cpu0 1 2 3 " + "1" * 21,  # more than a 64-bit counter
    "cpu" + "7" * 5000 + " 1 2 3 4",  # a CPU number past int()'s limit
])
def test_huge_numbers_affect_only_their_line(bad):
    stat = parse_stat(f"cpu 1 1 1 1\ncpu1 1 2 3 4\n{bad}\ncpu2 1 2 3 4\n", 100)
    assert [c.cpu for c in stat.cpus] == [1, 2]
    [error] = stat.errors
    assert len(error) < 1000, "the error quotes the line cut short"
    with pytest.raises(ParseError):
        parse_cpu_line(bad, 100)


def test_huge_number_in_a_stat_fixture_tree(tmp_path):
    (tmp_path / "stat").write_text("cpu  1 1 1 1\ncpu0 " + "8" * 10_000 + " 1 1 1\ncpu1 100 0 0 0\n")
    stat = read_stat(str(tmp_path), 100)
    assert [c.cpu for c in stat.cpus] == [1] and stat.cpus[0].modes["user"] == 1.0
    assert len(stat.errors) == 1


def _fifo(path):
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("name", ["stat", "mountinfo"])
def test_a_fifo_under_procfs_is_an_error_not_a_hang(tmp_path, name):
    """Nobody ever writes to the FIFO: a blocking open would wait forever.  The read must
    come back at once with an error for that file; the test bounds itself with a thread."""
    (tmp_path / "1").mkdir()
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    _fifo(tmp_path / "stat" if name == "stat" else tmp_path / "1" / "mountinfo")
    read = (lambda: read_stat(str(tmp_path), 100)) if name == "stat" else (lambda: read_mountinfo(str(tmp_path)))
    outcome = []

    def run():
        try:
            outcome.append(read())
        except BaseException as e:
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the stuck open so the thread can end, then fail
        with open(os.open(tmp_path / ("stat" if name == "stat" else "1/mountinfo"), os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("reading a FIFO under --path.procfs blocked")
    [error] = outcome
    assert isinstance(error, NotRegularFile) and "FIFO" in str(error)


def test_a_device_file_is_refused(tmp_path):
    os.symlink("/dev/zero", tmp_path / "stat")  # endless: reading it would never finish
    with pytest.raises(NotRegularFile, match="character device"):
        read_stat(str(tmp_path), 100)


def test_an_oversized_file_is_refused(tmp_path):
    (tmp_path / "stat").write_bytes(b"cpu0 1 2 3 4\n" * 1000)
    with pytest.raises(OSError, match="larger than"):
        read_file(str(tmp_path / "stat"), limit=4096)
    assert read_file(str(tmp_path / "stat")).count("\n") == 1000


def test_cpu_counters_never_go_backwards_and_a_returning_cpu_restarts(tmp_path, caplog):
    """iowait (and, on some hypervisors, other columns) can dip: the largest value seen is
    exported, as node_exporter does; a CPU that went offline restarts from its new value."""
    import logging

    from otel_bare_metal.collectors.cpu.source import ProcfsCPUSource

    stat = tmp_path / "stat"
    source = ProcfsCPUSource(str(tmp_path), hz=100)

    def read(text):
        stat.write_text(text)
        return {c.cpu: (c.modes, c.guest) for c in source.read().cpus}

    first = read("cpu  0 0 0 0 0\ncpu0 100 0 50 1000 30 0 0 0 7 0\ncpu1 10 0 5 100 3\n")
    assert first[0] == ({"user": 1.0, "nice": 0.0, "system": 0.5, "idle": 10.0, "iowait": 0.3, "irq": 0.0,
                         "softirq": 0.0, "steal": 0.0}, 0.07)
    with caplog.at_level(logging.DEBUG, logger="otel_bare_metal.collectors.cpu.source"):
        dipped = read("cpu  0 0 0 0 0\ncpu0 101 0 50 1001 20 0 0 0 5 0\ncpu1 11 0 5 101 4\n")
    assert dipped[0][0]["iowait"] == 0.3 and dipped[0][0]["user"] == 1.01 and dipped[0][1] == 0.07
    assert any("jumped backwards" in r.getMessage() for r in caplog.records)
    read("cpu  0 0 0 0 0\ncpu0 102 0 50 1002 21 0 0 0 5 0\n")  # cpu1 goes offline
    back = read("cpu  0 0 0 0 0\ncpu0 103 0 50 1003 31 0 0 0 8 0\ncpu1 1 0 1 2 1\n")
    assert back[1][0]["iowait"] == 0.01 and back[1][0]["user"] == 0.01  # restarted, not held at 0.04
    assert back[0][0]["iowait"] == 0.31 and back[0][1] == 0.08


def _own_mount_namespace_child():
    """A child process in a mount namespace of its own (private propagation), once it is there."""
    child = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"])
    ours = os.readlink("/proc/self/ns/mnt")
    for _ in range(500):  # bounded: unshare enters the namespace, then execs sleep
        try:
            if os.readlink(f"/proc/{child.pid}/ns/mnt") != ours and open(f"/proc/{child.pid}/comm").read().strip() == "sleep":
                return child
        except OSError:
            pass
        time.sleep(0.01)
    child.kill()
    raise AssertionError("the child never entered its own mount namespace")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting in a new namespace needs root (CI runs as root)")
def test_a_watched_mount_table_is_read_again_exactly_when_something_is_mounted(tmp_path):
    """The real kernel path: a mountinfo descriptor kept open, polled for POLLPRI, in a mount
    namespace of a child process (nothing is mounted in ours)."""
    child = _own_mount_namespace_child()
    table = MountTableFile((f"/proc/{child.pid}/mountinfo",))
    target = tmp_path / "watched"
    target.mkdir()

    def in_child(*command):
        subprocess.run(["nsenter", "-t", str(child.pid), "-m", *command], check=True, timeout=30)

    try:
        first = table.read()
        assert table.watched, "a mountinfo on procfs is polled, not read every time"
        assert table.read() is first, "nothing mounted: the text kept, not read again"
        in_child("mount", "-t", "tmpfs", "-o", "size=1m", "bench", str(target))
        mounted = table.read()
        assert f" {target} " in mounted and f" {target} " not in first
        assert table.read() is mounted
        in_child("umount", str(target))
        assert f" {target} " not in table.read()
    finally:
        table.close()
        child.kill()
        child.wait(10)


def test_a_mount_table_off_procfs_is_read_every_time(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n")
    table = MountTableFile((str(path),))
    try:
        assert "/dev/sda1" in table.read() and not table.watched
        path.write_text("1 0 8:2 / / rw - xfs /dev/sdb1 rw\n")
        assert "/dev/sdb1" in table.read()
    finally:
        table.close()


def test_on_procfs_tells_proc_from_a_fixture_tree(tmp_path):
    assert on_procfs("/proc/self/mountinfo") and on_procfs("/proc/1/mountinfo")
    assert not on_procfs(str(FIXTURES / "proc" / "1" / "mountinfo")) and not on_procfs(str(tmp_path))
