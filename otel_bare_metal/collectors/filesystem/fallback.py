"""Filesystem figures on systems without Linux procfs (macOS, the BSDs, Windows), through psutil.

It returns the same records as the Linux source, so nothing above it changes.

Inodes: psutil reports bytes only.  Where the platform has ``os.statvfs`` (macOS, the BSDs) the
inode counts come from it; where it has none (Windows, which has no inodes) ``files`` and
``files_free`` stay ``None`` and no ``system.filesystem.inodes.usage`` series is exported for
the mount, rather than an invented 0.
"""

from __future__ import annotations

import os
from typing import Callable

from otel_bare_metal.collectors.filesystem.source import FilesystemStat, MountFilter, StatfsResult, StatfsWatchdog, usage
from otel_bare_metal.procfs import Mount


def _psutil_statfs(psutil_module, statvfs: Callable[[str], os.statvfs_result] | None):
    def statfs(path: str) -> StatfsResult:
        usage = psutil_module.disk_usage(path)
        files = ffree = None
        if statvfs is not None:
            st = statvfs(path)
            files, ffree = st.f_files, st.f_ffree
        # psutil gives bytes, not blocks: report them with a block size of 1.
        return StatfsResult(bsize=1, blocks=usage.total, bfree=usage.total - usage.used, bavail=usage.free, files=files, ffree=ffree)

    return statfs


_NO_STATVFS = object()


class PsutilFilesystemSource:
    """``statvfs``: where inode counts come from (default ``os.statvfs`` where the platform has
    it; ``None``: no inode counts, so no inode series)."""

    def __init__(self, mount_filter: MountFilter | None = None, timeout: float = 5.0, psutil_module=None,
                 statvfs=_NO_STATVFS):
        import psutil

        self._psutil = psutil_module or psutil
        if statvfs is _NO_STATVFS:
            statvfs = getattr(os, "statvfs", None)
        self.has_inodes = statvfs is not None
        self.filter = mount_filter or MountFilter()
        self.watchdog = StatfsWatchdog(statfs=_psutil_statfs(self._psutil, statvfs), timeout=timeout)

    def read(self) -> FilesystemStat:
        mounts = []
        for part in self._psutil.disk_partitions(all=False):
            opts = part.opts.split(",")
            mount = Mount(mountpoint=part.mountpoint, device=part.device, fstype=part.fstype, readonly="ro" in opts)
            if self.filter.keep(mount):
                mounts.append(mount)
        results = self.watchdog.stat_many([m.mountpoint for m in mounts])
        usages = [usage(mount, results[mount.mountpoint]) for mount in mounts]
        return FilesystemStat(filesystems=usages)

    def close(self) -> None:
        self.watchdog.close()
