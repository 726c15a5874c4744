"""The non-Linux sources (psutil), exercised for real on this Linux machine, and the platform choice."""

import os

from otel_bare_metal.sources import cpu_source, filesystem_source
from otel_bare_metal.sources.cpu import HeldCPUSource, ProcfsCPUSource
from otel_bare_metal.sources.fallback import PsutilCPUSource, PsutilFilesystemSource
from otel_bare_metal.sources.filesystem import FilesystemSource, MountFilter


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
