"""systemd integration without libsystemd: readiness notification and socket activation.

* :func:`notify` sends a state (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``, ``STATUS=…``) to the
  unix datagram socket named by ``NOTIFY_SOCKET``, as ``sd_notify(3)`` does (a path, or an
  abstract socket when it starts with ``@``).  Without ``NOTIFY_SOCKET`` it does nothing, so
  the same binary runs under ``Type=notify``, ``Type=simple`` and outside systemd.
* :class:`Watchdog` sends ``WATCHDOG=1`` every half of ``WATCHDOG_USEC`` (``WatchdogSec=``), as
  ``sd_watchdog_enabled(3)`` advises, and only while the process is healthy, so systemd
  restarts a wedged exporter.
* :func:`listen_fds` takes the listening sockets systemd passes (``LISTEN_PID``,
  ``LISTEN_FDS``, descriptors from 3 on, as ``sd_listen_fds(3)``), which
  ``--web.systemd-socket`` serves on instead of ``--web.listen-address`` (node_exporter's flag).

The protocol is a few lines (the ``sd_notify`` and ``sd_listen_fds`` manual pages document it
as a stable interface), so no binding to libsystemd is needed.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
from typing import Callable, Mapping, MutableMapping

from otel_bare_metal.logutil import fields

log = logging.getLogger(__name__)

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START


class NoSockets(OSError):
    """``--web.systemd-socket`` without usable sockets from systemd (a start-up error, exit 1)."""


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` to the service manager.  True when it was sent; False without
    ``NOTIFY_SOCKET`` (not started by systemd with ``Type=notify``) or when sending failed
    (logged once at debug: the service manager's socket is gone, nothing to do about it)."""
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address[0] not in "/@":  # vsock addresses (vsock:CID:PORT) are for virtual machines' managers
        log.debug("NOTIFY_SOCKET is not a unix socket; not notifying", extra=fields(address=address))
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(state.encode())
    except OSError as e:
        log.debug("cannot notify the service manager", extra=fields(address=address, err=str(e)))
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``, or None when systemd
    set no watchdog for this process (``WATCHDOG_PID``, when set, must be ours)."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6 / 2


class Watchdog:
    """Pings the service manager's watchdog from a thread while ``healthy()`` is true."""

    def __init__(self, interval: float, healthy: Callable[[], bool] = lambda: True,
                 send: Callable[[str], bool] = notify):
        self.interval = interval
        self._healthy = healthy
        self._send = send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="systemd-watchdog", daemon=True)

    def start(self) -> "Watchdog":
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                ok = self._healthy()
            except Exception:
                ok = False
            if ok:
                self._send("WATCHDOG=1")
            else:  # no ping: systemd restarts the process once WatchdogSec passes
                log.warning("unhealthy: not pinging the systemd watchdog")
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def listen_fds(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The listening TCP sockets systemd passed to this process, in order.

    :class:`NoSockets` when none were passed (``LISTEN_PID`` is not this process or ``LISTEN_FDS`` is
    missing), or when a passed descriptor is not a listening stream socket (a ``.socket`` unit
    with ``ListenDatagram=`` or ``Accept=yes``).  Like ``sd_listen_fds(1)``, the variables are
    removed from the environment, so child processes do not take the sockets for theirs."""
    environ = os.environ if environ is None else environ
    pid, count = environ.get("LISTEN_PID", ""), environ.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    if not pid.isdigit() or int(pid) != os.getpid():
        raise NoSockets("--web.systemd-socket: no sockets passed by systemd (LISTEN_PID is not this process; "
                         "start it from a .socket unit)")
    if not count.isdigit() or int(count) == 0:
        raise NoSockets("--web.systemd-socket: no sockets passed by systemd (LISTEN_FDS is empty)")
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                raise NoSockets(f"--web.systemd-socket: descriptor {fd} is not a socket")
            sock = socket.socket(fileno=fd)
        except OSError as e:
            raise NoSockets(f"--web.systemd-socket: descriptor {fd}: {e.strerror or e}") from None
        if (sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM
                or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
            sock.detach()
            raise NoSockets(f"--web.systemd-socket: descriptor {fd} is not a listening TCP socket "
                             "(use ListenStream=[ADDRESS:]PORT without Accept=yes)")
        sock.set_inheritable(False)  # FD_CLOEXEC, as sd_listen_fds sets it
        sockets.append(sock)
    return sockets
