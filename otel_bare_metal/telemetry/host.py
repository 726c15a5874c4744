"""Map CPU and filesystem records to observations of the instruments in the definitions table.

Attribute dicts are built once per (CPU, mode) or mount and reused on every collection.
"""

from __future__ import annotations

from typing import Iterable

from opentelemetry.metrics import Observation

from otel_bare_metal import limits
from otel_bare_metal.sources.records import CPUStat, FilesystemStat, FilesystemUsage
from otel_bare_metal.telemetry.collection import Collector, Observer
from otel_bare_metal.telemetry.definitions import CPU_MODES


def printable(text: str) -> str:
    """A path as valid UTF-8 text: bytes that are not UTF-8 (kept by the parser as surrogate
    escapes) become ``\\xNN``, so the label can always be encoded and is still unique."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class CPUObservers:
    def __init__(self, collector: Collector):
        self._collector = collector
        self._attrs: dict[tuple[int, str], dict[str, object]] = {}

    def _a(self, cpu: int, mode: str) -> dict[str, object]:
        key = (cpu, mode)
        attrs = self._attrs.get(key)
        if attrs is None:
            attrs = self._attrs[key] = {"cpu.logical_number": cpu, "cpu.mode": mode}
        return attrs

    def _stat(self) -> CPUStat | None:
        return self._collector.result

    def time(self) -> Iterable[Observation]:
        stat = self._stat()
        if stat is None:
            return []
        a = self._a
        return [
            Observation(seconds, a(c.cpu, CPU_MODES[column]))
            for c in stat.cpus
            for column, seconds in c.modes.items()
        ]

    def guest_time(self) -> Iterable[Observation]:
        stat = self._stat()
        if stat is None:
            return []
        out = []
        for c in stat.cpus:
            if c.guest is not None:
                out.append(Observation(c.guest, self._a(c.cpu, "user")))
            if c.guest_nice is not None:
                out.append(Observation(c.guest_nice, self._a(c.cpu, "nice")))
        return out

    def logical_count(self) -> Iterable[Observation]:
        stat = self._stat()
        return [] if stat is None else [Observation(len(stat.cpus))]

    def observers(self) -> dict[str, Observer]:
        return {
            "system.cpu.time": self.time,
            "system.cpu.guest.time": self.guest_time,
            "system.cpu.logical.count": self.logical_count,
        }


class FilesystemObservers:
    def __init__(self, collector: Collector):
        self._collector = collector
        # mounts come and go: the cache is bounded
        self._attrs: limits.BoundedCache[tuple, dict[str, str]] = limits.BoundedCache(limits.ATTRIBUTE_SETS, lru=False)

    def _a(self, fs: FilesystemUsage, state: str | None = None) -> dict[str, str]:
        m = fs.mount
        key = (m.device, m.mountpoint, m.fstype, m.readonly, state)
        attrs = self._attrs.get(key)
        if attrs is None:
            attrs = {
                "system.device": printable(m.device),
                "system.filesystem.mountpoint": printable(m.mountpoint),
                "system.filesystem.type": printable(m.fstype),
                "system.filesystem.mode": "ro" if m.readonly else "rw",
            }
            if state is not None:
                attrs["system.filesystem.state"] = state
            self._attrs.put(key, attrs)
        return attrs

    def _ok(self) -> list[FilesystemUsage]:
        stat: FilesystemStat | None = self._collector.result
        return [] if stat is None else [fs for fs in stat.filesystems if fs.error is None]

    def _all(self) -> list[FilesystemUsage]:
        stat: FilesystemStat | None = self._collector.result
        return [] if stat is None else stat.filesystems

    def usage(self) -> Iterable[Observation]:
        out = []
        for fs in self._ok():
            out.append(Observation(fs.size - fs.free, self._a(fs, "used")))
            out.append(Observation(fs.avail, self._a(fs, "free")))
            out.append(Observation(fs.free - fs.avail, self._a(fs, "reserved")))
        return out

    def limit(self) -> Iterable[Observation]:
        return [Observation(fs.size, self._a(fs)) for fs in self._ok()]

    def utilization(self) -> Iterable[Observation]:
        out = []
        for fs in self._ok():
            used = fs.size - fs.free
            usable = used + fs.avail
            out.append(Observation(used / usable if usable > 0 else 0.0, self._a(fs)))
        return out

    def inodes(self) -> Iterable[Observation]:
        out = []
        for fs in self._ok():
            if fs.files is None or fs.files_free is None:  # the platform has no inode counts
                continue
            out.append(Observation(fs.files - fs.files_free, self._a(fs, "used")))
            out.append(Observation(fs.files_free, self._a(fs, "free")))
        return out

    def error(self) -> Iterable[Observation]:
        return [Observation(0 if fs.error is None else 1, self._a(fs)) for fs in self._all()]

    def timeout(self) -> Iterable[Observation]:
        return [Observation(1 if fs.hung else 0, self._a(fs)) for fs in self._all()]

    def mount_info(self) -> Iterable[Observation]:
        """node_exporter's mount_info: 1 per mount whose statfs answered and that has device numbers."""
        out = []
        for fs in self._ok():
            m = fs.mount
            if m.major is None or m.minor is None:
                continue
            key = ("info", m.device, m.mountpoint, m.major, m.minor)
            attrs = self._attrs.get(key)
            if attrs is None:
                attrs = {
                    "system.device": printable(m.device),
                    "system.filesystem.mountpoint": printable(m.mountpoint),
                    "system.filesystem.device.major": m.major,
                    "system.filesystem.device.minor": m.minor,
                }
                self._attrs.put(key, attrs)
            out.append(Observation(1, attrs))
        return out

    def observers(self) -> dict[str, Observer]:
        return {
            "system.filesystem.usage": self.usage,
            "system.filesystem.limit": self.limit,
            "system.filesystem.utilization": self.utilization,
            "system.filesystem.inodes.usage": self.inodes,
            "system.filesystem.error": self.error,
            "system.filesystem.timeout": self.timeout,
            "system.filesystem.mount.info": self.mount_info,
        }
