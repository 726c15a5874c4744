"""The non-Linux sources (psutil), exercised for real on this Linux machine, and the platform choice."""

import os

from otel_bare_metal.collectors.cpu import cpu_source
from otel_bare_metal.collectors.cpu.fallback import PsutilCPUSource
from otel_bare_metal.collectors.filesystem import filesystem_source
from otel_bare_metal.collectors.filesystem.fallback import PsutilFilesystemSource
from otel_bare_metal.collectors.cpu.source import HeldCPUSource, ProcfsCPUSource
from otel_bare_metal.collectors.filesystem.source import FilesystemSource, MountFilter


def test_platform_choice_is_made_in_one_place():
    assert isinstance(cpu_source(platform="linux"), ProcfsCPUSource)
    darwin = cpu_source(platform="darwin")  # counters held there too: never backwards
    assert isinstance(darwin, HeldCPUSource) and isinstance(darwin.source, PsutilCPUSource)
    assert isinstance(filesystem_source(platform="linux"), FilesystemSource)
    fs = filesystem_source(platform="freebsd14")
    assert isinstance(fs, PsutilFilesystemSource)
    fs.close()


def test_psutil_cpu_source_agrees_with_procfs():
    ours = {c.cpu: c for c in ProcfsCPUSource().read().cpus}
    theirs = PsutilCPUSource().read()
    assert theirs.errors == [] and len(theirs.cpus) == len(ours)
    for c in theirs.cpus:
        for mode in ("user", "system", "idle"):
            assert abs(c.modes[mode] - ours[c.cpu].modes[mode]) < 5.0, (c.cpu, mode)


def test_psutil_filesystem_source_reads_root():
    source = PsutilFilesystemSource(MountFilter())
    try:
        stat = source.read()
    finally:
        source.close()
    root = [f for f in stat.filesystems if f.mount.mountpoint == "/"]
    assert root and root[0].error is None
    st = os.statvfs("/")
    assert root[0].size == st.f_blocks * st.f_frsize


def test_psutil_filesystem_source_takes_inodes_from_statvfs_where_the_platform_has_it():
    source = PsutilFilesystemSource(MountFilter())
    try:
        root = [f for f in source.read().filesystems if f.mount.mountpoint == "/"][0]
    finally:
        source.close()
    st = os.statvfs("/")
    assert source.has_inodes and root.files == st.f_files and abs(root.files_free - st.f_ffree) < 10_000


def _render(source, naming):
    from opentelemetry.sdk.metrics import MeterProvider

    from otel_bare_metal.exposition.prometheus import PrometheusPage
    from otel_bare_metal.telemetry import SourceWorker, instrument

    page = PrometheusPage()
    provider = MeterProvider(metric_readers=[page.reader])
    instrument(provider.get_meter("t"), [SourceWorker("filesystem", source)], naming=naming)
    try:
        return page.render()[0].decode()
    finally:
        provider.shutdown()
        source.close()


def test_no_inode_series_where_the_platform_has_no_inode_counts():
    """As on Windows: psutil gives bytes, and there is no statvfs, so no inode counts exist.
    The byte series are exported; the inode series are absent, not 0."""
    otel = _render(PsutilFilesystemSource(MountFilter(), statvfs=None), "otel")
    assert 'system_filesystem_limit_bytes{' in otel and 'system_filesystem_mountpoint="/"' in otel
    assert "system_filesystem_inodes_usage{" not in otel
    classic = _render(PsutilFilesystemSource(MountFilter(), statvfs=None), "classic")
    assert "node_filesystem_size_bytes{" in classic
    assert "node_filesystem_files{" not in classic and "node_filesystem_files_free{" not in classic


def test_inode_series_where_the_platform_has_them():
    otel = _render(PsutilFilesystemSource(MountFilter()), "otel")
    assert 'system_filesystem_inodes_usage{' in otel
