"""The one ``host[:port]`` parser: HDHomeRun devices (client, discover, ``/probe`` targets and
the allowlist's configured devices) and the HTTP listener all read addresses with it.

Accepted: ``host``, ``host:port``, ``[IPv6]``, ``[IPv6]:port``, and a bare IPv6 address
(only where a default port exists, since its last group cannot be told from a port).  A zone
id (``[fe80::1%eth0]``) is kept by the parser; :func:`canonical_host` decides whether it is
allowed.  Standard library only; the only system call is the interface-name lookup of a zone id.
"""

from __future__ import annotations

import ipaddress
import socket


def parse_host_port(address: str, default_port: int | None = None, *, allow_empty_host: bool = False,
                    allow_port_zero: bool = False) -> tuple[str, int]:
    """Split ``address`` into (host, port); brackets are removed from an IPv6 host.

    ``default_port`` None makes the port required.  ``allow_empty_host`` accepts ``:port``
    (all interfaces, for listeners); ``allow_port_zero`` accepts port 0 (the OS picks one).
    Raises :class:`ValueError` naming what is wrong.
    """
    text = address.strip()
    port_text: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unbalanced '[' in address {address!r}")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected {rest!r} after ']' in address {address!r}")
            port_text = rest[1:]
        _check_ipv6(host, f"{host!r} in brackets is not an IPv6 address")
    elif text.count(":") > 1:
        if default_port is None:
            raise ValueError(f"put the IPv6 address in brackets: [{text}]:PORT, not {address!r}")
        host = text  # bare IPv6 address, default port
        _check_ipv6(host, f"{address!r} is not an IPv6 address (use [addr]:port)")
    else:
        host, sep, port_part = text.partition(":")
        if sep:
            port_text = port_part
    if not host and not allow_empty_host:
        raise ValueError(f"no host in address {address!r}")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"no port in address {address!r}")
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"port {port_text!r} in address {address!r} is not a number")
    if len(port_text) > 5 or not (0 if allow_port_zero else 1) <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} in address {address!r} is out of range")
    return host, int(port_text)


def format_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::1]:65001``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_ipv6(host: str, message: str) -> None:
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        raise ValueError(message) from None


class ListenAddress(str):
    """A listen address as given (``:9464``, ``127.0.0.1:9464``, ``[::1]:9464``), parsed once:
    ``host`` ("" for every interface) and ``port`` (0: the OS picks one)."""

    host: str
    port: int

    def __new__(cls, text: str) -> "ListenAddress":
        try:
            host, port = parse_host_port(text, None, allow_empty_host=True, allow_port_zero=True)
        except ValueError as e:
            raise ValueError(f"invalid listen address {text!r}: want HOST:PORT, :PORT or [IPv6]:PORT ({e})") from None
        self = super().__new__(cls, text.strip())
        self.host, self.port = host, port
        return self


def parse_listen_address(address: str) -> ListenAddress:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port``; a ``ListenAddress`` is returned as is."""
    return address if isinstance(address, ListenAddress) else ListenAddress(address)


def canonical_host(host: str) -> str:
    """The one spelling of ``host``: an IP address in ``ipaddress``'s compressed form
    (``10.0.0.5``, ``fe80::1``), a name in lower case.

    An IPv6 zone id is meaningful only on a link-local address, where it names the interface
    the device is reached through: there it is kept, spelled as the interface's name
    (``%2`` and ``%eth0`` are one zone when interface 2 is ``eth0``); a zone id on any other
    address, or one naming no interface of this host, raises :class:`ValueError`.  So one
    device is one spelling, whatever zone spellings it is written with.
    """
    text = host.strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        if "%" in text or ":" in text:
            raise ValueError(f"{host!r} is not an IP address") from None
        return text.lower()
    if ip.version == 4 or ip.scope_id is None:
        return str(ip)
    plain = ipaddress.IPv6Address(text.split("%", 1)[0])
    if not plain.is_link_local:
        raise ValueError(f"zone id in {host!r}: a zone id belongs only to a link-local address (fe80::/10)")
    zone = ip.scope_id
    try:
        name = socket.if_indextoname(int(zone)) if zone.isascii() and zone.isdigit() else zone
        socket.if_nametoindex(name)
    except (OSError, ValueError, OverflowError):
        raise ValueError(f"zone id in {host!r}: no interface {zone!r} on this host") from None
    return f"{plain}%{name}"


def canonical_host_port(address: str, default_port: int) -> str:
    """``address`` as the one ``host:port`` (``[v6]:port``) spelling: the port always written,
    the host as :func:`canonical_host` spells it (``10.0.0.5`` and ``10.0.0.5:65001`` are one)."""
    host, port = parse_host_port(address, default_port)
    return format_host_port(canonical_host(host), port)
