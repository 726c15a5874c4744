"""Linux procfs readers: ``/proc/stat`` CPU times and ``/proc/<pid>/mountinfo``.

A small library in the manner of prometheus/procfs, shared by the cpu and filesystem
collectors: it knows the kernel's file formats and nothing of metrics.  Reading is separate
from parsing: ``read_*`` take the procfs root as a value and read a pseudo-file in one go,
``parse_*`` take its text, so every parser is tested from strings and fixture trees.  The
records it returns are plain typed values, already in base units (seconds).
"""

from __future__ import annotations

import os
import re
import select
import stat
from dataclasses import dataclass, field

from otel_bare_metal.limits import PROCFS_READ_BYTES

# Kernel column order of a /proc/stat "cpuN" line (proc(5)).  Older kernels stop early:
# iowait/irq/softirq since 2.5.41, steal 2.6.11, guest 2.6.24, guest_nice 2.6.33.
CPU_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


@dataclass(frozen=True)
class CPUTimes:
    """Seconds one logical CPU spent in each mode since boot.

    ``modes`` holds only the columns the kernel gave, keyed by kernel column name
    (``user`` … ``steal``).  Guest time is kept apart in ``guest`` / ``guest_nice``
    because the kernel already counts it inside ``user`` / ``nice``.
    """

    cpu: int
    modes: dict[str, float]
    guest: float | None = None
    guest_nice: float | None = None


@dataclass(frozen=True)
class CPUStat:
    """One reading of every logical CPU, plus the lines that could not be parsed."""

    cpus: list[CPUTimes]
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of the mount table (mountinfo), octal escapes already decoded.

    ``major``/``minor`` are the filesystem's device numbers (st_dev, mountinfo's third field);
    None where the platform's mount table has none (the psutil fallback).  Two mounts with the
    same numbers are views of one filesystem (bind mounts, a device mounted twice).
    """

    mountpoint: str
    device: str
    fstype: str
    readonly: bool
    major: int | None = None
    minor: int | None = None
    root: str = "/"


@dataclass(frozen=True)
class MountTable:
    """The parsed mount table, plus the lines that could not be parsed."""

    mounts: list[Mount]
    errors: list[str] = field(default_factory=list)


class ParseError(ValueError):
    """A procfs line that does not have the expected shape; the message quotes the line."""


class NotRegularFile(OSError):
    """A path under --path.procfs that is a FIFO, device or socket: reading it could block forever."""


def read_file(path: str, limit: int = PROCFS_READ_BYTES) -> str:
    """Read a pseudo-file in one read: its size lies, and its content changes between reads.

    Hostile or broken trees must not wedge a scrape: the file is opened non-blocking (so
    opening a FIFO with no writer returns at once) and must be a regular file (procfs files
    are), otherwise NotRegularFile is raised before any read.  More than ``limit`` bytes is
    an error too, so a replaced file cannot exhaust memory.
    """
    fd = _open_regular(path)
    try:
        return _read_fd(fd, path, limit)
    finally:
        os.close(fd)


def _open_regular(path: str) -> int:
    """A descriptor of ``path``, opened non-blocking; NotRegularFile unless it is a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(f"{path} is not a regular file ({_kind(mode)}); not reading it")
    return fd


def _read_fd(fd: int, path: str, limit: int) -> str:
    """Everything from the descriptor's position to the end, at most ``limit`` bytes."""
    chunks = []
    size = 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise OSError(f"{path} is larger than {limit} bytes; not reading it")
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return f"mode {mode:o}"


# --------------------------------------------------------------------------- /proc/stat

def parse_stat(text: str, user_hz: float) -> CPUStat:
    """Parse the per-CPU lines of ``/proc/stat``.

    Ticks become seconds (ticks / USER_HZ).  CPU ids are kept as the kernel numbers them
    (an offline CPU leaves a gap).  The summary ``cpu`` line and non-CPU lines are skipped.
    A malformed ``cpuN`` line does not stop the others: it is reported in ``errors``,
    quoted, and the remaining CPUs are returned.
    """
    if user_hz <= 0:
        raise ValueError(f"USER_HZ must be positive, got {user_hz!r}")
    cpus: list[CPUTimes] = []
    errors: list[str] = []
    seen: set[int] = set()
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        try:
            times = parse_cpu_line(line, user_hz)
        except ValueError as e:  # ParseError, or anything else a hostile line provokes: that line only
            errors.append(str(e) if isinstance(e, ParseError) else f"{e} in /proc/stat line {_quote(line)}")
            continue
        if times.cpu in seen:
            errors.append(f"duplicate CPU {times.cpu} in /proc/stat line {_quote(line)}")
            continue
        seen.add(times.cpu)
        cpus.append(times)
    return CPUStat(cpus=cpus, errors=errors)


# The kernel prints u64 tick counts (at most 20 digits) and CPU numbers far below 10 digits.
# Longer runs of digits are hostile input: int() would refuse them past 4 300 digits anyway.
_MAX_TICK_DIGITS = 20
_MAX_CPU_DIGITS = 10
_QUOTE_CHARS = 200


def _quote(line: str) -> str:
    """The line for an error message, cut short: a hostile line can be megabytes long."""
    return repr(line) if len(line) <= _QUOTE_CHARS else repr(line[:_QUOTE_CHARS]) + f"... ({len(line)} characters)"


# A well-formed ``cpuN`` line, checked in one match: ASCII digits only, within the limits below,
# at least 4 columns.  A line it refuses takes the slow path, which names what is wrong.
_CPU_LINE = re.compile(r"cpu([0-9]{1,10})((?:[ \t]+[0-9]{1,20}){4,})[ \t]*")
_MODE_COLUMNS = CPU_COLUMNS[:8]


def parse_cpu_line(line: str, user_hz: float) -> CPUTimes:
    """Parse one ``cpuN v1 v2 …`` line; raise ParseError naming the line."""
    match = _CPU_LINE.fullmatch(line)
    if match is not None:
        seconds = [int(v) / user_hz for v in match.group(2).split()[: len(CPU_COLUMNS)]]
        return CPUTimes(cpu=int(match.group(1)), modes=dict(zip(_MODE_COLUMNS, seconds)),
                        guest=seconds[8] if len(seconds) > 8 else None,
                        guest_nice=seconds[9] if len(seconds) > 9 else None)
    return _parse_cpu_line_slowly(line, user_hz)


def _parse_cpu_line_slowly(line: str, user_hz: float) -> CPUTimes:
    """:func:`parse_cpu_line` for a line the fast match refused: the same result where the line
    is acceptable after all (other whitespace), else the ParseError that names its fault."""
    fields = line.split()
    label = fields[0]
    number = label[3:]
    if not number.isdigit() or not number.isascii() or len(number) > _MAX_CPU_DIGITS:
        raise ParseError(f"bad CPU label in /proc/stat line {_quote(line)}")
    values = fields[1:]
    if len(values) < 4:
        raise ParseError(f"/proc/stat line has {len(values)} columns, want at least 4: {_quote(line)}")
    ticks = []
    for value in values[: len(CPU_COLUMNS)]:  # columns a future kernel adds are ignored
        if not value.isdigit() or not value.isascii():
            raise ParseError(f"non-numeric column {_quote(value)} in /proc/stat line {_quote(line)}")
        if len(value) > _MAX_TICK_DIGITS:
            raise ParseError(f"column of {len(value)} digits (more than a 64-bit counter) in /proc/stat line {_quote(line)}")
        ticks.append(int(value))
    seconds = dict(zip(CPU_COLUMNS, (t / user_hz for t in ticks)))
    guest = seconds.pop("guest", None)
    guest_nice = seconds.pop("guest_nice", None)
    return CPUTimes(cpu=int(number), modes=seconds, guest=guest, guest_nice=guest_nice)


def read_stat(procfs: str, user_hz: float) -> CPUStat:
    return parse_stat(read_file(os.path.join(procfs, "stat")), user_hz)


# --------------------------------------------------------------------------- mountinfo

# st_dev as major:minor in decimal; both are 32-bit in userspace's dev_t, so at most 10 digits
# (which also keeps a hostile line away from int()'s digit limit).
_DEVICE_NUMBERS = re.compile(r"([0-9]{1,10}):([0-9]{1,10})")
_OCTAL_ESCAPE = re.compile(r"\\([0-3][0-7]{2})")  # one byte: \000 to \377


def unescape_octal(field: str) -> str:
    r"""Decode the kernel's octal escapes (``\040`` space, ``\011`` tab, ``\012`` newline, ``\134`` backslash).

    The kernel escapes bytes, so the decoded bytes are read as UTF-8; bytes that are not
    UTF-8 survive as surrogate escapes, so a path always round-trips to the same bytes.
    """
    if "\\" not in field:
        return field
    raw = field.encode("utf-8", "surrogateescape")
    decoded = _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), raw.decode("latin-1"))
    return decoded.encode("latin-1").decode("utf-8", "surrogateescape")


def parse_mountinfo(text: str) -> MountTable:
    """Parse ``/proc/<pid>/mountinfo`` (proc(5)).

    Line format: ``id parent major:minor root mountpoint options [optional…] - fstype source superoptions``.
    ``major:minor`` must be two decimal numbers (node_exporter fails the whole collection on
    one it cannot scan; we report the line and keep the others).
    A mount is read-only when either its per-mount options or its superblock options say ``ro``
    (the latter is how an ext4 remounted read-only after errors shows up).
    A malformed line is reported in ``errors``, quoted, and the other mounts are returned.
    """
    mounts = []
    errors = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
        except ValueError:
            sep = -1
        numbers = _DEVICE_NUMBERS.fullmatch(fields[2]) if sep >= 0 else None
        if sep < 0 or len(fields) < sep + 3 or numbers is None:
            errors.append(f"malformed mountinfo line {_quote(line)}")
            continue
        options = fields[5].split(",")
        super_options = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
        mounts.append(
            Mount(
                mountpoint=unescape_octal(fields[4]),
                device=unescape_octal(fields[sep + 2]),
                fstype=unescape_octal(fields[sep + 1]),
                # node_exporter 1.8+: a superblock flagged emergency_ro (ext4 after errors) is read-only too
                readonly="ro" in options or "ro" in super_options or "emergency_ro" in super_options,
                major=int(numbers.group(1)),
                minor=int(numbers.group(2)),
                root=unescape_octal(fields[3]),
            )
        )
    return MountTable(mounts=mounts, errors=errors)


def mountinfo_paths(procfs: str) -> tuple[str, str]:
    """Where the mount table is read: as PID 1 sees it (the host's view when the exporter
    shares its PID namespace), else, when that cannot be read, our own view."""
    return os.path.join(procfs, "1", "mountinfo"), os.path.join(procfs, "self", "mountinfo")


def _open_first(paths: tuple[str, ...]) -> tuple[int, str]:
    """The first of ``paths`` that opens; NotRegularFile at once (something was planted there:
    report it rather than quietly read another view), the last OSError when none opens."""
    for i, path in enumerate(paths):
        try:
            return _open_regular(path), path
        except NotRegularFile:
            raise
        except OSError:
            if i == len(paths) - 1:
                raise
    raise ValueError("no path to open")


def read_mountinfo_text(procfs: str) -> str:
    """The mount table's text (see :func:`mountinfo_paths`), read once."""
    fd, path = _open_first(mountinfo_paths(procfs))
    try:
        return _read_fd(fd, path, PROCFS_READ_BYTES)
    finally:
        os.close(fd)


def read_mountinfo(procfs: str) -> MountTable:
    """The mount table of :func:`read_mountinfo_text`, parsed."""
    return parse_mountinfo(read_mountinfo_text(procfs))


def on_procfs(path: str, own_mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Whether ``path`` lies on a procfs mount, by the filesystem type our own mount table gives
    the mount that holds it (the longest mount point above it)."""
    try:
        real = os.path.realpath(path)
        mounts = parse_mountinfo(read_file(own_mountinfo)).mounts
    except (OSError, ValueError):
        return False
    best: Mount | None = None
    for m in mounts:
        inside = real == m.mountpoint or real.startswith(m.mountpoint.rstrip("/") + "/")
        if inside and (best is None or len(m.mountpoint) >= len(best.mountpoint)):
            best = m  # later lines of the same mount point are mounted over the earlier ones
    return best is not None and best.fstype == "proc"


class MountTableFile:
    """A mount table kept open and read again only after the kernel reports a change.

    proc(5): a ``/proc/<pid>/mountinfo`` descriptor is pollable; after a mount or an unmount in
    its mount namespace, poll(2) reports ``POLLPRI`` (and ``POLLERR``) on it.  So while nothing
    is mounted or unmounted, a read costs one poll instead of an open, a read of the whole
    table and a close.  That is trusted only for a file on procfs (checked once, when it is
    opened); any other file (a fixture tree, a copy) is read afresh every time.  Reads must
    not overlap (the filesystem source's reads never do).
    """

    def __init__(self, paths: tuple[str, ...], limit: int = PROCFS_READ_BYTES):
        self.paths = paths
        self.limit = limit
        self._fd: int | None = None
        self._path = ""
        self._poll: select.poll | None = None
        self._text = ""
        self._pollable: dict[str, bool] = {}  # path → on procfs (checked once per path)

    @property
    def watched(self) -> bool:
        """Whether the open table is on procfs and read again only on a change."""
        return self._poll is not None

    def read(self) -> str:
        if self._poll is not None and self._fd is not None:
            try:
                if not self._poll.poll(0):
                    return self._text
                os.lseek(self._fd, 0, os.SEEK_SET)  # the poll that reported the change re-armed it
                self._text = _read_fd(self._fd, self._path, self.limit)
                return self._text
            except OSError:
                self.close()  # open it afresh below
        fd, path = _open_first(self.paths)
        try:
            text = _read_fd(fd, path, self.limit)
            if path not in self._pollable:
                self._pollable[path] = on_procfs(path)
            if self._pollable[path]:
                poll = select.poll()
                poll.register(fd, select.POLLPRI)  # POLLERR comes with it, unasked
                self._fd, self._path, self._poll, self._text = fd, path, poll, text
                fd = -1
            return text
        finally:
            if fd >= 0:
                os.close(fd)

    def close(self) -> None:
        fd, self._fd, self._poll = self._fd, None, None
        if fd is not None:
            os.close(fd)
