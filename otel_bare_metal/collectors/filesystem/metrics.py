"""The filesystem collector's metrics: its rows (name, kind, unit, attributes, classic names)
and the observers that map ``FilesystemStat`` records to them.

Attribute dicts are built once per mount (one per state) and reused on every collection.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Iterable

from opentelemetry.metrics import Observation

from otel_bare_metal import limits
from otel_bare_metal.collectors.filesystem.source import FilesystemStat, FilesystemUsage
from otel_bare_metal.procfs import Mount
from otel_bare_metal.telemetry.collection import SourceWorker, Observer
from otel_bare_metal.telemetry.definitions import Classic, Kind, Metric

STATE = "system.filesystem.state"
FS = ("system.device", "system.filesystem.mountpoint", "system.filesystem.type", "system.filesystem.mode")
CLASSIC_FS = MappingProxyType({"system.device": "device", "system.filesystem.type": "fstype", "system.filesystem.mountpoint": "mountpoint"})
# node_exporter 1.8+ labels every filesystem series with device_error: "" when statfs answered,
# else the error's text.  Ours is always "": a failing mount's reason goes to the log, and the
# series keeps one identity whatever the errno (docs/metrics.md).
CLASSIC_FS_CONST = MappingProxyType({"device_error": ""})
# node_filesystem_mount_info's own label set: no fstype, no device_error, the device numbers.
MOUNT_NUMBERS = ("system.filesystem.device.major", "system.filesystem.device.minor")
CLASSIC_MOUNT_INFO = MappingProxyType({"system.device": "device", "system.filesystem.device.major": "major",
                                       "system.filesystem.device.minor": "minor", "system.filesystem.mountpoint": "mountpoint"})

USAGE = Metric(
    "system.filesystem.usage", Kind.UPDOWN, "By",
    "Filesystem space by state: used, free (available to unprivileged users) and reserved (for root).",
    FS + (STATE,), "filesystem",
    classic=(Classic("node_filesystem_free_bytes", CLASSIC_FS, "Filesystem free space in bytes.",
                     states=("free", "reserved"), state_attribute=STATE, constant=CLASSIC_FS_CONST),
             Classic("node_filesystem_avail_bytes", CLASSIC_FS,
                     "Filesystem space available to non-root users in bytes.", states=("free",), state_attribute=STATE,
                     constant=CLASSIC_FS_CONST)))
LIMIT = Metric(
    "system.filesystem.limit", Kind.UPDOWN, "By",
    "Total size of the filesystem (blocks × block size).", FS, "filesystem",
    classic=(Classic("node_filesystem_size_bytes", CLASSIC_FS, "Filesystem size in bytes.", constant=CLASSIC_FS_CONST),))
UTILIZATION = Metric(
    "system.filesystem.utilization", Kind.GAUGE, "1",
    "Fraction of the space usable by unprivileged users that is used: used / (used + free), as df shows it.",
    FS, "filesystem")
INODES_USAGE = Metric(
    "system.filesystem.inodes.usage", Kind.UPDOWN, "{inode}",
    "Inodes by state: used and free.", FS + (STATE,), "filesystem",
    classic=(Classic("node_filesystem_files", CLASSIC_FS, "Filesystem total file nodes.", states=("used", "free"), state_attribute=STATE,
                     constant=CLASSIC_FS_CONST),
             Classic("node_filesystem_files_free", CLASSIC_FS, "Filesystem total free file nodes.",
                     states=("free",), state_attribute=STATE, constant=CLASSIC_FS_CONST)))
ERROR = Metric(
    "system.filesystem.error", Kind.GAUGE, "",
    "1 when statfs on the mount failed or timed out in this collection, else 0.", FS, "filesystem",
    classic=(Classic("node_filesystem_device_error", CLASSIC_FS,
                     "Whether an error occurred while getting statistics for the given device.",
                     constant=CLASSIC_FS_CONST),
             # like node_exporter 1.8+, for every mount, whether statfs answered or not
             Classic("node_filesystem_readonly", CLASSIC_FS, "Filesystem read-only status.",
                     value_from=("system.filesystem.mode", MappingProxyType({"ro": 1, "rw": 0})),
                     constant=CLASSIC_FS_CONST)))
TIMEOUT = Metric(
    "system.filesystem.timeout", Kind.GAUGE, "",
    "1 when the mount did not answer statfs within the timeout and is skipped until it answers again (a hung mount).",
    FS, "filesystem")
# node_exporter (collector/filesystem_common.go): 1 for every mount whose statfs answered,
# major and minor as it scans them from mountinfo (%d:%d, printed in decimal).
MOUNT_INFO = Metric(
    "system.filesystem.mount.info", Kind.GAUGE, "",
    "Classic mode only. Always 1 for a mount whose statfs answered; its device numbers (mountinfo's major:minor) "
    "as attributes. Not on the psutil fallback (no device numbers there).",
    ("system.device", "system.filesystem.mountpoint") + MOUNT_NUMBERS, "filesystem",
    classic=(Classic("node_filesystem_mount_info", CLASSIC_MOUNT_INFO, "Filesystem mount information."),),
    classic_only=True)

METRICS: tuple[Metric, ...] = (USAGE, LIMIT, UTILIZATION, INODES_USAGE, ERROR, TIMEOUT, MOUNT_INFO)


def printable(text: str) -> str:
    """A path as valid UTF-8 text: bytes that are not UTF-8 (kept by the parser as surrogate
    escapes) become ``\\xNN``, so the label can always be encoded and is still unique."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _MountAttributes:
    """The attribute dicts of one mount's series: per state, without a state, and mount_info's."""

    __slots__ = ("mount", "plain", "used", "free", "reserved", "info")

    def __init__(self, mount: Mount):
        self.mount = mount  # kept, so the id this entry is cached under stays unique
        self.plain: dict[str, str | int] = {
            "system.device": printable(mount.device),
            "system.filesystem.mountpoint": printable(mount.mountpoint),
            "system.filesystem.type": printable(mount.fstype),
            "system.filesystem.mode": "ro" if mount.readonly else "rw",
        }
        self.used, self.free, self.reserved = ({**self.plain, STATE: state} for state in ("used", "free", "reserved"))
        self.info: dict[str, str | int] | None = None
        if mount.major is not None and mount.minor is not None:
            self.info = {
                "system.device": self.plain["system.device"],
                "system.filesystem.mountpoint": self.plain["system.filesystem.mountpoint"],
                "system.filesystem.device.major": mount.major,
                "system.filesystem.device.minor": mount.minor,
            }


class FilesystemObservers:
    def __init__(self, worker: SourceWorker):
        self._worker = worker
        # Keyed by the Mount record's identity: the source hands out the same records for as
        # long as the mount table does not change.  Mounts come and go: the cache is bounded.
        self._attrs: limits.BoundedCache[int, _MountAttributes] = limits.BoundedCache(limits.ATTRIBUTE_SETS, lru=False)

    def _a(self, fs: FilesystemUsage) -> _MountAttributes:
        m = fs.mount
        attrs = self._attrs.get(id(m))
        if attrs is None or attrs.mount is not m:
            attrs = _MountAttributes(m)
            self._attrs.put(id(m), attrs)
        return attrs

    def _ok(self) -> list[FilesystemUsage]:
        stat: FilesystemStat | None = self._worker.result
        return [] if stat is None else [fs for fs in stat.filesystems if fs.error is None]

    def _all(self) -> list[FilesystemUsage]:
        stat: FilesystemStat | None = self._worker.result
        return [] if stat is None else stat.filesystems

    def usage(self) -> Iterable[Observation]:
        out: list[Observation] = []
        for fs in self._ok():
            a = self._a(fs)
            out += (Observation(fs.size - fs.free, a.used), Observation(fs.avail, a.free), Observation(fs.free - fs.avail, a.reserved))
        return out

    def limit(self) -> Iterable[Observation]:
        return [Observation(fs.size, self._a(fs).plain) for fs in self._ok()]

    def utilization(self) -> Iterable[Observation]:
        out = []
        for fs in self._ok():
            used = fs.size - fs.free
            usable = used + fs.avail
            out.append(Observation(used / usable if usable > 0 else 0.0, self._a(fs).plain))
        return out

    def inodes(self) -> Iterable[Observation]:
        out: list[Observation] = []
        for fs in self._ok():
            if fs.files is None or fs.files_free is None:  # the platform has no inode counts
                continue
            a = self._a(fs)
            out += (Observation(fs.files - fs.files_free, a.used), Observation(fs.files_free, a.free))
        return out

    def error(self) -> Iterable[Observation]:
        return [Observation(0 if fs.error is None else 1, self._a(fs).plain) for fs in self._all()]

    def timeout(self) -> Iterable[Observation]:
        return [Observation(1 if fs.hung else 0, self._a(fs).plain) for fs in self._all()]

    def mount_info(self) -> Iterable[Observation]:
        """node_exporter's mount_info: 1 per mount whose statfs answered and that has device numbers."""
        out = []
        for fs in self._ok():
            info = self._a(fs).info
            if info is not None:
                out.append(Observation(1, info))
        return out

    def observers(self) -> dict[Metric, Observer]:
        return {
            USAGE: self.usage,
            LIMIT: self.limit,
            UTILIZATION: self.utilization,
            INODES_USAGE: self.inodes,
            ERROR: self.error,
            TIMEOUT: self.timeout,
            MOUNT_INFO: self.mount_info,
        }
