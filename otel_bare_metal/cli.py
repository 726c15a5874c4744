"""The ``otel-bare-metal`` command line, in node_exporter's style.

``otel-bare-metal [FLAGS]`` serves metrics; the flags and their environment variables are read by
``config.load`` (see there).  Exit codes: 2 for a bad flag, variable or path (one line on
stderr), 1 when the exporter cannot start (one log line: a port in use, a broken web config
file), 0 after SIGTERM or SIGINT.  SIGHUP reloads the web config file and never ends the process.

Small tools that try each API by hand (as the talk this project grew from does):
``otel-bare-metal cpustat``, ``otel-bare-metal statfs PATH``, ``otel-bare-metal hdhomerun …``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import select
import signal
import socket
import sys
from typing import Mapping, NoReturn, Sequence

from otel_bare_metal.config import PROG, Config, ConfigError, load
from otel_bare_metal.registry import Registry, env_name, registry

SHUTDOWN_GRACE = 5.0  # seconds a scrape in flight may take to finish after SIGTERM
log = logging.getLogger(__name__)

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, never the usage block or a traceback
        raise ConfigError(message)


class Signals:
    """SIGTERM, SIGINT and SIGHUP as flags.  The handlers only set a flag (and Python's wakeup
    descriptor wakes ``wait``); everything a signal asks for runs in the main loop."""

    def __init__(self) -> None:
        self.stop = False
        self.reload = False
        self._read, self._write = socket.socketpair()  # a socket: set_wakeup_fd takes only those on Windows
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum, frame) -> None:
        self.stop = True

    def _on_reload(self, signum, frame) -> None:
        self.reload = True

    def wait(self) -> None:
        """Until a signal's handler has run.  The wakeup descriptor ends the wait at once; a signal
        the kernel gave another thread has its handler run in this thread at the next bytecode
        boundary, so the loop looks again (and at the latest after a second)."""
        while not (self.stop or self.reload):
            select.select([self._read], [], [], 1.0)
            try:
                while self._read.recv(512):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        """Back to the defaults: a second SIGTERM during shutdown ends the process at once."""
        if self._read.fileno() < 0:
            return  # closed already
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.set_wakeup_fd(self._old_fd)
        self._read.close()
        self._write.close()


def serve(argv: Sequence[str], environ: Mapping[str, str], reg: Registry | None = None) -> int:
    signals = Signals()  # first: a SIGHUP (systemctl reload) while starting never ends the process
    try:
        return _serve(argv, environ, reg, signals)
    finally:
        signals.close()


def _serve(argv: Sequence[str], environ: Mapping[str, str], reg: Registry | None, signals: "Signals") -> int:
    from otel_bare_metal.logutil import fields, setup_logging

    reg = reg or registry()  # built-in collectors and the installed plugins, loaded here
    try:
        config = load(argv, environ, reg)
    except (ConfigError, SystemExit):
        raise
    except Exception as e:  # e.g. a plugin's check failing other than by ValueError: still one line
        print(f"{PROG}: error: cannot read the configuration: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 1
    setup_logging(config.log_level, config.log_format)
    for notice in config.warnings:
        log.warning(notice.msg, extra=fields(**notice.fields))
    reg.log_problems()
    try:
        exporter = start(config, reg)
    except OSError as e:  # logging is set up: one error line in the chosen format, never a traceback
        log.error("cannot listen" if e.filename is None else "cannot start", extra=fields(err=_one_line(e)))
        return 1
    except Exception as e:  # a broken web config file (WebConfigError), a NUL in a path, a bug
        log.error("cannot start", extra=fields(err=_one_line(e)))
        return 1
    # Everything built so far (modules, the SDK, instruments, caches) lives as long as the process:
    # keep the cyclic garbage collector from walking it in every full collection, which cost a
    # 256-CPU collection up to half again its time (bench/floor.py measures with the same freeze).
    # The import-time garbage goes first, so that the freeze does not keep it for good.
    gc.collect()
    gc.freeze()
    release_free_heap()
    from otel_bare_metal import systemd

    systemd.notify("READY=1\nSTATUS=serving on " + " ".join(exporter.server.addresses))  # Type=notify: started
    interval = systemd.watchdog_interval()
    watchdog = systemd.Watchdog(interval, exporter.healthy).start() if interval else None
    while True:
        signals.wait()
        if signals.stop:
            break
        if signals.reload:
            signals.reload = False
            reload(exporter)
    systemd.notify("STOPPING=1")
    if watchdog is not None:
        watchdog.stop()
    signals.close()  # a second SIGTERM or SIGINT from here on ends the process at once
    # Stop accepting, let scrapes in flight finish (at most SHUTDOWN_GRACE seconds), then exit 0.
    log.info("shutting down", extra={"grace_seconds": SHUTDOWN_GRACE})
    exporter.close(grace=SHUTDOWN_GRACE)
    return 0


def start(config: Config, reg: Registry):
    """The running exporter; any exception closes what was opened and propagates."""
    from otel_bare_metal.app import App
    from otel_bare_metal.server.listen import raise_open_files_limit

    limits = raise_open_files_limit()  # as the Go runtime does: 1 024 descriptors go fast under a flood
    if limits is not None and limits[0] != limits[1]:
        log.debug("raised the open files limit", extra={"from": limits[0], "to": limits[1]})
    exporter = App(config, registry=reg)
    try:
        exporter.start()
    except BaseException:
        exporter.close()
        raise
    return exporter


def release_free_heap() -> bool:
    """Return the C heap's free pages to the kernel: glibc's ``malloc_trim(0)`` (True when it
    released some).  Start-up frees heap it never uses again: above all the compiler's, when
    modules have no cached bytecode (a source checkout with ``PYTHONDONTWRITEBYTECODE``: some
    1.4 MB, ``bench/start_memory.py``), else the imports' and the plugin scan's temporaries (well
    under 0.1 MB).  glibc gives back on its own only the free space at the top of the heap, so
    without this those pages stay resident for the life of the process.  Other C libraries
    (musl) have no ``malloc_trim``: then nothing happens and this returns False."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # imported by the OpenTelemetry SDK already: no cost

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


def reload(exporter) -> None:
    """SIGHUP: reload the web config file when there is one (a broken file keeps the previous one)."""
    from otel_bare_metal.logutil import fields

    if exporter.web_config is None:
        log.info("SIGHUP received: no web config file to reload (--web.config.file is not set)")
        return
    try:
        exporter.web_config.reload()
    except Exception as e:  # the reload logs its own problems; nothing may end the process here
        log.error("web config reload failed; keeping the previous configuration", extra=fields(err=_one_line(e)))


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    else:
        text = str(e) or type(e).__name__
    if isinstance(e, RecursionError):
        text = "nested too deeply"
    return " ".join(text.split())


def cpustat(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    p = _Parser(prog=f"{PROG} cpustat", description="Print each CPU's user, system and idle seconds from /proc/stat.")
    p.add_argument("--path.procfs", dest="procfs", default=environ.get(env_name("--path.procfs"), "/proc"))
    args = p.parse_args(argv)
    from otel_bare_metal.collectors.cpu import cpu_source

    try:
        stat = cpu_source(args.procfs).read()
    except OSError as e:
        print(f"{PROG} cpustat: cannot read {args.procfs}/stat: {e.strerror or e}", file=sys.stderr)
        return 1
    for c in stat.cpus:
        m = c.modes
        print(f"cpu{c.cpu}: user={m.get('user', 0):.2f}s system={m.get('system', 0):.2f}s idle={m.get('idle', 0):.2f}s")
    for error in stat.errors:
        print(f"{PROG} cpustat: {error}", file=sys.stderr)
    return 1 if stat.errors else 0


def statfs(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    p = _Parser(prog=f"{PROG} statfs", description="Print statfs(2) figures of the filesystem holding PATH.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--path.procfs", dest="procfs", default=environ.get(env_name("--path.procfs"), "/proc"))
    args = p.parse_args(argv)
    from otel_bare_metal.collectors.filesystem.source import os_statfs
    from otel_bare_metal.procfs import read_mountinfo

    try:
        result = os_statfs(args.path)
    except OSError as e:
        print(f"{PROG} statfs: {args.path}: {e.strerror or e}", file=sys.stderr)
        return 1
    fstype = "unknown"
    try:
        real = os.path.realpath(args.path)
        best = ""
        for mount in read_mountinfo(args.procfs).mounts:
            mp = mount.mountpoint
            if (real == mp or real.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, fstype = mp, mount.fstype
    except OSError:
        pass
    b = result.bsize
    print(
        f"{args.path} ({fstype}): {result.files} files, {result.ffree} free files; "
        f"size {result.blocks * b} bytes, free {result.bfree * b} bytes, available {result.bavail * b} bytes"
    )
    return 0


def hdhomerun(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    from otel_bare_metal.hdhr.cli import main as hdhomerun_main

    return hdhomerun_main(list(argv))


COMMANDS = {"cpustat": cpustat, "statfs": statfs, "hdhomerun": hdhomerun}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:], environ)
        if argv and argv[0] == "serve":
            argv = argv[1:]
        return serve(argv, environ)
    except ConfigError as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
