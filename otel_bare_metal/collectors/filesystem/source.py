"""Filesystem figures: the mount table, filtered and de-duplicated, and statfs(2) under a watchdog.

``statfs`` on a mount whose server is gone (NFS, CIFS) blocks in the kernel, possibly forever.
Every call therefore runs on a worker thread, never on the scrape's own thread, and a scrape
waits for all of them together at most ``timeout`` seconds.  A mount that does not answer in
time is reported (``hung=True``) and skipped by later scrapes until its stuck call returns,
which is the background check that it answers again.  So no scrape — not even the first —
waits longer than the timeout because of a hung mount.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable

from otel_bare_metal.logutil import RateLimitedLog
from otel_bare_metal.procfs import Mount, MountTable, MountTableFile, mountinfo_paths, parse_mountinfo

log = logging.getLogger(__name__)
_log = RateLimitedLog(log)  # an NFS outage can hang thousands of mounts at once

# node_exporter's Linux defaults (collector/filesystem_linux.go): virtual and container-internal filesystems.
DEFAULT_MOUNT_POINTS_EXCLUDE = r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs"
    r"|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$"
)


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


@dataclass(frozen=True)
class StatfsResult:
    """The statfs(2) fields we use; block counts are in units of ``bsize``."""

    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int | None  # None where the platform has no inode counts (psutil on Windows)
    ffree: int | None


def os_statfs(path: str) -> StatfsResult:
    """statfs(2) through ``os.statvfs``; glibc fills ``f_bsize`` from statfs's ``f_bsize``,
    the figure node_exporter multiplies the block counts by."""
    st = os.statvfs(path)
    return StatfsResult(st.f_bsize, st.f_blocks, st.f_bfree, st.f_bavail, st.f_files, st.f_ffree)


@dataclass(frozen=True)
class MountFilter:
    """Regexes on mount point and filesystem type; a mount is kept when it matches the
    include pattern (if any) and not the exclude pattern."""

    mount_points_exclude: str = DEFAULT_MOUNT_POINTS_EXCLUDE
    fs_types_exclude: str = DEFAULT_FS_TYPES_EXCLUDE
    mount_points_include: str = ""
    fs_types_include: str = ""

    def __post_init__(self) -> None:
        compiled = {}
        for name in ("mount_points_exclude", "fs_types_exclude", "mount_points_include", "fs_types_include"):
            pattern = getattr(self, name)
            try:
                compiled[name] = re.compile(pattern) if pattern else None
            except re.error as e:
                raise ValueError(f"invalid {name.replace('_', '-')} regex {pattern!r}: {e}") from None
        object.__setattr__(self, "_compiled", compiled)

    def keep(self, mount: Mount) -> bool:
        c = self._compiled  # type: ignore[attr-defined]  # set in __post_init__ of this frozen dataclass
        for pattern, value in ((c["mount_points_include"], mount.mountpoint), (c["fs_types_include"], mount.fstype)):
            if pattern is not None and not pattern.search(value):
                return False
        for pattern, value in ((c["mount_points_exclude"], mount.mountpoint), (c["fs_types_exclude"], mount.fstype)):
            if pattern is not None and pattern.search(value):
                return False
        return True


def host_mountpoint(mountpoint: str, rootfs: str) -> str:
    """The mount point as the host names it.

    With ``--path.rootfs=/host`` a mount table read from our own namespace shows the host's
    mounts under ``/host/...``: strip that prefix.  A mount table read from the host's PID 1
    already shows host paths, which are kept as they are.
    """
    root = rootfs.rstrip("/")
    if not root:
        return mountpoint
    if mountpoint == root:
        return "/"
    if mountpoint.startswith(root + "/"):
        return mountpoint[len(root):]
    return mountpoint


def select_mounts(mounts: list[Mount], keep: Callable[[Mount], bool], rootfs: str = "/") -> list[Mount]:
    """Apply the filter and drop duplicate views of one filesystem.

    A device mounted twice, or bind-mounted, shows the same ``major:minor`` more than once;
    statfs would return the same figures for each, so only one is kept: the mount of the
    filesystem's root (``root == "/"``) if there is one, then the shortest mount point.
    """
    chosen: dict[object, tuple[int, Mount]] = {}
    order: list[object] = []
    for index, mount in enumerate(mounts):
        label = host_mountpoint(mount.mountpoint, rootfs)
        mount = replace(mount, mountpoint=label) if label != mount.mountpoint else mount
        if not keep(mount):
            continue
        key = (mount.major, mount.minor) if mount.major is not None else f"#{index}"
        if key not in chosen:
            order.append(key)
            chosen[key] = (index, mount)
        elif _preference(mount) < _preference(chosen[key][1]):
            chosen[key] = (chosen[key][0], mount)
    return [chosen[key][1] for key in order]


def _preference(mount: Mount) -> tuple[int, int, str]:
    return (0 if mount.root == "/" else 1, len(mount.mountpoint), mount.mountpoint)


HUNG = "mount did not answer statfs within the timeout; skipped until it answers"
BUSY = "no statfs worker was free before the deadline"


class _Batch:
    """One scrape's statfs calls: a queue that a few worker tasks drain together, so one
    stuck call holds one worker and the others finish the rest."""

    def __init__(self, paths: list[str]):
        self.todo = deque(paths)
        self.results: dict[str, StatfsResult | BaseException] = {}
        self.running: dict[int, str] = {}  # worker thread id → the path it is inside statfs for
        self.pending = len(paths)
        self.lock = threading.Lock()
        self._done = threading.Lock()  # held until the last call returns (a Lock: cheaper than an Event)
        self._done.acquire()
        if not paths:
            self._done.release()

    def finished_one(self) -> None:
        """Count one call returned (under ``lock``); the last one ends the batch."""
        self.pending -= 1
        if self.pending == 0:
            self._done.release()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the batch to end; True when it has (one waiter only)."""
        return self._done.acquire(timeout=max(0.0, timeout))


#: How long a batch runs on one worker before the others join it.  statfs on a healthy mount
#: takes microseconds, so one worker usually finishes a whole batch in less than a
#: millisecond, and waking more threads would only cost CPU; a call that blocks (a hung
#: mount) or a very long batch is helped after this delay.
HELP_AFTER = 0.002


class StatfsWatchdog:
    """Runs statfs calls on worker threads with one deadline for the whole batch.

    A batch starts on one worker; if it is not done after :data:`HELP_AFTER`, up to
    ``workers - 1`` more join it, so one stuck call holds one worker and the others finish
    the rest.  A call still running at the deadline marks its path hung; later batches skip
    that path (without calling statfs) until the stuck call finally returns.  Stuck calls
    keep their worker thread; when too many workers are stuck the pool is replaced, so
    healthy mounts always have workers.  Threads leaked that way are bounded by the number
    of hung mounts.  Each batch submits at most ``workers`` tasks, not one per mount.
    """

    def __init__(self, statfs: Callable[[str], StatfsResult] = os_statfs, timeout: float = 5.0, workers: int = 4):
        if timeout <= 0:
            raise ValueError("statfs timeout must be positive")
        self._statfs = statfs
        self.timeout = timeout
        self._workers = workers
        self._lock = threading.Lock()
        self._hung: set[str] = set()
        self._stuck_workers = 0
        self._pool = self._new_pool()

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="statfs")

    def hung(self) -> set[str]:
        with self._lock:
            return set(self._hung)

    def stat_many(self, paths: list[str]) -> dict[str, StatfsResult | BaseException | str]:
        """statfs each path; the value is a result, the exception statfs raised, ``HUNG`` or ``BUSY``."""
        results: dict[str, StatfsResult | BaseException | str] = {}
        with self._lock:
            pool = self._pool
            todo = []
            for path in paths:
                if path in self._hung:
                    results[path] = HUNG
                else:
                    todo.append(path)
        batch = _Batch(todo)
        if todo:
            deadline = time.monotonic() + self.timeout
            pool.submit(self._drain, batch)
            if not batch.wait(min(HELP_AFTER, self.timeout)):
                for _ in range(min(self._workers, len(todo)) - 1):
                    pool.submit(self._drain, batch)
                batch.wait(deadline - time.monotonic())
        with batch.lock:  # held while marking, so a call returning now is seen as an answer
            results.update(batch.results)
            for path in batch.todo:  # never started: the workers were stuck elsewhere
                results[path] = BUSY
            batch.todo.clear()  # late workers stop instead of starting more
            for path in batch.running.values():
                results[path] = HUNG
                self._mark_hung(path)
        return results

    def _drain(self, batch: _Batch) -> None:
        me = threading.get_ident()
        answered: tuple[str, StatfsResult | BaseException] | None = None
        while True:
            with batch.lock:  # one hold per call: record the last answer, take the next path
                if answered is not None:
                    del batch.running[me]
                    batch.results[answered[0]] = answered[1]
                    batch.finished_one()
                    self._answered(answered[0])
                if not batch.todo:
                    return
                path = batch.todo.popleft()
                batch.running[me] = path
            try:
                answered = (path, self._statfs(path))
            except Exception as e:  # the error is the result for that mount
                answered = (path, e)

    def _mark_hung(self, path: str) -> None:
        _log(logging.WARNING, ("hung", path), "statfs did not answer within the timeout; skipping the mount until it answers",
             path=path, timeout_seconds=self.timeout)
        with self._lock:
            self._hung.add(path)
            self._stuck_workers += 1
            if self._stuck_workers >= self._workers - 1:
                self._pool.shutdown(wait=False)
                self._pool = self._new_pool()
                self._stuck_workers = 0

    def _answered(self, path: str) -> None:
        """A call returned: if its mount was marked hung, it answers again."""
        if path not in self._hung:  # cheap check first; the set only changes under the lock
            return
        with self._lock:
            if path in self._hung:
                self._hung.discard(path)
                self._stuck_workers = max(0, self._stuck_workers - 1)
                _log(logging.INFO, ("answers", path), "statfs answers again", path=path)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class FilesystemSource:
    """Reads the mount table and statfs figures for every selected mount."""

    def __init__(
        self,
        procfs: str = "/proc",
        rootfs: str = "/",
        mount_filter: MountFilter | None = None,
        watchdog: StatfsWatchdog | None = None,
        read_mounts: Callable[[str], MountTable] | None = None,
    ):
        self.procfs = procfs
        self.rootfs = rootfs
        self.filter = mount_filter or MountFilter()
        self.watchdog = watchdog or StatfsWatchdog()
        self._read_mounts = read_mounts
        self._table = MountTableFile(mountinfo_paths(procfs))
        self._text: str | None = None  # the mount table's text when it was last parsed
        self._selected: tuple[list[Mount], list[str], list[str]] = ([], [], [])

    @property
    def timeout(self) -> float:
        """The longest ``read`` waits for statfs (the collection's own bound for this source)."""
        return self.watchdog.timeout

    def statfs_path(self, mountpoint: str) -> str:
        return os.path.join(self.rootfs, mountpoint.lstrip("/")) if self.rootfs != "/" else mountpoint

    def read(self) -> FilesystemStat:
        mounts, paths, errors = self._mounts()
        results = self.watchdog.stat_many(paths)
        usages = [usage(mount, results[path]) for mount, path in zip(mounts, paths)]
        return FilesystemStat(filesystems=usages, errors=list(errors))

    def _mounts(self) -> tuple[list[Mount], list[str], list[str]]:
        """The selected mounts, their statfs paths and the mount table's errors.

        The mount table changes when something is mounted or unmounted, and it is looked at on
        every scrape: it is read again only when the kernel reports a change
        (:class:`~otel_bare_metal.procfs.MountTableFile`), and parsed and filtered again only
        when its text changed.  (Reads of one source never overlap: the collection runs at
        most one at a time.)
        """
        if self._read_mounts is not None:
            return self._select(self._read_mounts(self.procfs))
        text = self._table.read()
        if text != self._text:
            self._selected = self._select(parse_mountinfo(text))
            self._text = text
        return self._selected

    def _select(self, table: MountTable) -> tuple[list[Mount], list[str], list[str]]:
        mounts = select_mounts(table.mounts, self.filter.keep, self.rootfs)
        return mounts, [self.statfs_path(m.mountpoint) for m in mounts], table.errors

    def close(self) -> None:
        self.watchdog.close()
        self._table.close()


def usage(mount: Mount, result: StatfsResult | BaseException | str) -> FilesystemUsage:
    """One mount's figures from what the watchdog returned for it: bytes are blocks × block
    size (as node_exporter computes them); a hung or unserved call is a timeout, an error its
    errno name.  The one mapping, for the Linux source and the psutil fallback alike."""
    if isinstance(result, StatfsResult):
        b = result.bsize
        return FilesystemUsage(mount=mount, size=result.blocks * b, free=result.bfree * b, avail=result.bavail * b,
                               files=result.files, files_free=result.ffree)
    if result == HUNG:
        return FilesystemUsage(mount=mount, error="timeout", hung=True)
    if result == BUSY:
        return FilesystemUsage(mount=mount, error="timeout")
    return FilesystemUsage(mount=mount, error=_describe(result))


def _describe(error: object) -> str:
    if isinstance(error, OSError) and error.errno is not None:
        import errno

        return errno.errorcode.get(error.errno, str(error.errno))
    return type(error).__name__
