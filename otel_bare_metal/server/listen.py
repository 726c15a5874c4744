"""Listening sockets: from ``--web.listen-address`` values or handed over already bound (systemd socket
activation), and the open files limit they live under."""

from __future__ import annotations

import logging
import socket

from otel_bare_metal.address import ListenAddress, parse_listen_address

__all__ = ["ListenAddress", "address_of", "adopt", "listen", "open_files_limit", "parse_listen_address",
           "raise_open_files_limit"]  # fmt: skip

log = logging.getLogger(__name__)


def raise_open_files_limit() -> tuple[int, int] | None:
    """Lift the soft ``RLIMIT_NOFILE`` to the hard limit, as the Go runtime does at start (1 024 is a
    common soft limit, which a few hundred slow clients exhaust). Returns (old, new), or None where
    there is no such limit."""
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        log.warning("cannot raise the open files limit", extra={"soft": soft, "hard": hard, "err": str(e)})
        return soft, soft
    return soft, hard


def open_files_limit() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _family(host: str) -> tuple[int, str]:
    if host == "":
        return (socket.AF_INET6, "::") if socket.has_ipv6 and _ipv6_works() else (socket.AF_INET, "0.0.0.0")
    if ":" in host:
        return socket.AF_INET6, host
    return socket.AF_INET, host


def _ipv6_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
        return True
    except OSError:
        return False


def listen(address: str) -> socket.socket:
    """A non-blocking listening TCP socket bound to ``address`` (``address.parse_listen_address``).
    ``OSError`` names the address (e.g. the port is taken)."""
    parsed = parse_listen_address(address)  # as is when config.load parsed it already
    host, port = parsed.host, parsed.port
    family, bind_host = _family(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and bind_host == "::":
            try:  # serve IPv4 and IPv6 on "::"
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        sock.bind((bind_host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"{address}: {e.strerror or e}") from None
    except BaseException:
        sock.close()
        raise
    return sock


def adopt(sock: socket.socket) -> socket.socket:
    """Take an already bound and listening stream socket (e.g. passed by systemd with ``LISTEN_FDS``):
    made non-blocking; ``ValueError`` when it is not a listening stream socket."""
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"listening socket {sock.fileno()} is not a stream socket")
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:  # not reported on every platform: trust the caller
        listening = 1
    if not listening:
        raise ValueError(f"socket {sock.fileno()} is not listening")
    sock.setblocking(False)
    return sock


def address_of(sock: socket.socket) -> str:
    """``host:port`` (``[v6]:port``) of a listening socket, or the path of a Unix one."""
    name = sock.getsockname()
    if isinstance(name, tuple):
        host, port = name[0], name[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(name)
