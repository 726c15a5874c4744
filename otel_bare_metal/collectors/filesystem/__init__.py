"""The filesystem collector: statfs figures of every selected mount (psutil elsewhere).

``source.py`` reads (OpenTelemetry-free), ``metrics.py`` holds its rows and their observers,
this module declares the collector and its flags.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from otel_bare_metal.collectors.filesystem.metrics import METRICS, FilesystemObservers
from otel_bare_metal.collectors.filesystem.source import (
    DEFAULT_FS_TYPES_EXCLUDE,
    DEFAULT_MOUNT_POINTS_EXCLUDE,
    FilesystemSource,
    MountFilter,
    StatfsWatchdog,
)
from otel_bare_metal.registry import CollectorSpec, Paths, option

@dataclass(frozen=True)
class FilesystemOptions:
    mount_points_exclude: str = option(
        "--collector.filesystem.mount-points-exclude", DEFAULT_MOUNT_POINTS_EXCLUDE, "Regexp of mount points to exclude.",
        metavar="REGEXP", aliases=("--collector.filesystem.ignored-mount-points",))
    fs_types_exclude: str = option(
        "--collector.filesystem.fs-types-exclude", DEFAULT_FS_TYPES_EXCLUDE, "Regexp of filesystem types to exclude.",
        metavar="REGEXP", aliases=("--collector.filesystem.ignored-fs-types",))
    mount_points_include: str = option(
        "--collector.filesystem.mount-points-include", "",
        "Regexp of mount points to include (default: all); replaces the default exclude, not with an exclude.",
        metavar="REGEXP")
    fs_types_include: str = option(
        "--collector.filesystem.fs-types-include", "",
        "Regexp of filesystem types to include (default: all); replaces the default exclude, not with an exclude.",
        metavar="REGEXP")
    mount_timeout: float = option(
        "--collector.filesystem.mount-timeout", 5.0, "How long to wait for statfs on a mount before marking it hung.")


def _exclude(options: FilesystemOptions, what: str, default: str) -> str:
    """node_exporter 1.8+ (collector/filesystem_common.go): an include pattern replaces the
    default exclude, and an include given together with an exclude is a start-up error.
    (An exclude equal to the default counts as not given.)"""
    include, exclude = getattr(options, f"{what}_include"), getattr(options, f"{what}_exclude")
    if not include:
        return exclude
    flag = what.replace("_", "-")
    if exclude and exclude != default:
        raise ValueError(f"--collector.filesystem.{flag}-exclude and --collector.filesystem.{flag}-include "
                         "are mutually exclusive")
    return ""


def _filter(options: FilesystemOptions) -> MountFilter:
    return MountFilter(
        mount_points_exclude=_exclude(options, "mount_points", DEFAULT_MOUNT_POINTS_EXCLUDE),
        fs_types_exclude=_exclude(options, "fs_types", DEFAULT_FS_TYPES_EXCLUDE),
        mount_points_include=options.mount_points_include,
        fs_types_include=options.fs_types_include,
    )


def filesystem_source(procfs: str = "/proc", rootfs: str = "/", mount_filter: MountFilter | None = None,
                      timeout: float = 5.0, platform: str = sys.platform):
    """The platform's filesystem source: Linux reads mountinfo and calls statfs, every other
    system goes through psutil."""
    if platform.startswith("linux"):
        return FilesystemSource(procfs, rootfs, mount_filter, StatfsWatchdog(timeout=timeout))
    from otel_bare_metal.collectors.filesystem.fallback import PsutilFilesystemSource

    return PsutilFilesystemSource(mount_filter, timeout)


def _source(paths: Paths, options: FilesystemOptions):
    return filesystem_source(paths.procfs, paths.rootfs, _filter(options), options.mount_timeout, platform=paths.platform)


def _check(paths: Paths, options: FilesystemOptions, enabled: bool) -> None:
    _filter(options)  # a bad regexp is a ValueError naming the flag


COLLECTOR = CollectorSpec(
    name="filesystem",
    source=_source,
    observers=FilesystemObservers,
    metrics=METRICS,
    options=FilesystemOptions,
    title="Filesystem (`--collector.filesystem`)",
    docs="\n".join([
        "States: `used` = (blocks − bfree) × bsize, `free` = bavail × bsize (what unprivileged",
        "users can still write), `reserved` = (bfree − bavail) × bsize. `system.filesystem.limit`",
        "= blocks × bsize. A mount whose statfs fails or times out keeps only its `error` and",
        "`timeout` series.",
        "",
        "Without Linux procfs (macOS, the BSDs, Windows) mounts and byte counts come from psutil and",
        "inode counts from `statvfs(3)`. Where the platform has no inode counts (Windows) no",
        "`system.filesystem.inodes.usage` series (classic: `node_filesystem_files`,",
        "`node_filesystem_files_free`) is exported for the mount, rather than an invented 0.",
    ]),
    check=_check,
)
