"""``cli.release_free_heap``: the free heap handed back to the kernel once the exporter has started."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

from helpers import ROOT

MB = 1_000_000


def test_release_free_heap_gives_freed_pages_back_to_the_kernel():
    """40 MB freed below a live block stay resident until ``release_free_heap`` (glibc trims only the
    top of its heap by itself); with glibc it returns them, with another C library it does nothing."""
    code = textwrap.dedent("""
        from otel_bare_metal.cli import release_free_heap

        def anon():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))

        blocks = [bytes(16_384) for _ in range(2_500)]  # from malloc's heap (Python's allocator takes <= 512 B)
        pin = bytes(16_384)  # above them: glibc's own trimming (the top of the heap) cannot return them
        del blocks
        before = anon()
        released = release_free_heap()
        print(released, before - anon())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    released, dropped = out.stdout.split()
    if platform.libc_ver()[0] == "glibc":
        assert released == "True"
        assert int(dropped) > 30 * MB, f"only {int(dropped) / MB:.1f} MB of 40 MB freed went back to the kernel"
    else:
        assert released == "False"
