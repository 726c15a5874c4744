"""Plain typed records that sources return and the telemetry layer maps to instruments.

Nothing here knows about OpenTelemetry; values are already in base units (seconds, bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class FilesystemUsage:
    """statfs figures of one mount.  ``error`` is None when statfs answered.

    ``size``/``free``/``avail`` are bytes (blocks × block size, as node_exporter computes
    them); ``free`` counts the blocks reserved for root, ``avail`` does not.  ``files`` and
    ``files_free`` are inode counts, ``None`` where the platform has none (Windows): then no
    inode series is exported, never an invented 0.
    """

    mount: Mount
    size: int = 0
    free: int = 0
    avail: int = 0
    files: int | None = None
    files_free: int | None = None
    error: str | None = None
    hung: bool = False


@dataclass(frozen=True)
class FilesystemStat:
    """One reading of every included mount."""

    filesystems: list[FilesystemUsage]
    errors: list[str] = field(default_factory=list)
