"""Which targets ``/probe`` may dial: the exporter must not become an open relay.

A probe makes the exporter connect to an address a stranger chose.  Targets must match an
allowlist rule, ``NETWORK[/PREFIX]`` optionally followed by ``:PORT`` or ``:*`` (any port); IPv6
in brackets (``[fd00::]/8:*``, ``[::1]:65001``).  A rule without a port allows port 65001 only.
The default allows loopback and the private ranges on port 65001.  A host name is resolved and
every address it resolves to must be allowed.  Configured devices are always allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable, Iterable

from otel_bare_metal.hdhr import DEFAULT_PORT, format_address, parse_address

DEFAULT_RULES = (
    "127.0.0.0/8", "[::1]", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "[fc00::]/7",
)
FLAG = "--hdhomerun.allow-target"


class TargetNotAllowed(Exception):
    """The target is well-formed but outside the allowlist (HTTP 403)."""


@dataclass(frozen=True)
class Rule:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int | None  # None: any port

    def allows(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        return ip in self.network and (self.port is None or self.port == port)

    def __str__(self) -> str:
        net = str(self.network) if self.network.version == 4 else f"[{self.network.network_address}]/{self.network.prefixlen}"
        return f"{net}:{'*' if self.port is None else self.port}"


def parse_rule(text: str) -> Rule:
    """``10.0.0.0/8``, ``10.0.0.0/8:*``, ``192.168.1.8:65001``, ``[fd00::]/8:*``, ``[fd00::/8]:*``, ``[::1]``."""
    raw = text.strip()
    port_text = ""
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ValueError(f"allow-target {text!r}: missing ']'")
        inside, rest = raw[1:end], raw[end + 1:]
        prefix = ""
        if rest.startswith("/"):
            prefix, _, port_text = rest[1:].partition(":")
            prefix = "/" + prefix
        elif rest.startswith(":"):
            port_text = rest[1:]
        elif rest:
            raise ValueError(f"allow-target {text!r}: unexpected {rest!r} after ']'")
        network_text = inside + prefix
    else:
        if raw.count(":") > 1:
            raise ValueError(f"allow-target {text!r}: put IPv6 networks in brackets, e.g. [fd00::]/8:*")
        network_text, _, port_text = raw.partition(":")
    try:
        network = ipaddress.ip_network(network_text, strict=False)
    except ValueError as e:
        raise ValueError(f"allow-target {text!r}: {e}") from None
    if port_text == "*":
        port = None
    elif port_text == "":
        port = DEFAULT_PORT
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise ValueError(f"allow-target {text!r}: port must be a number or *")
    return Rule(network, port)


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without repeats."""
    return list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


class Allowlist:
    def __init__(self, rules: Iterable[str] = DEFAULT_RULES, configured: Iterable[str] = (), resolver: Resolver = resolve):
        self.rules = [parse_rule(r) for r in rules]
        self._configured = {self.normalise(a) for a in configured}
        self._resolve = resolver

    @staticmethod
    def normalise(address: str) -> tuple[str, int]:
        host, port = parse_address(address)
        return host.lower(), port

    def check(self, target: str) -> str:
        """The one address to dial for ``target``, as ``ip:port`` (``[v6]:port``); raise
        ValueError (malformed, HTTP 400) or TargetNotAllowed (HTTP 403).

        A host name is resolved **once**, here; every address it resolves to must be allowed,
        and the caller dials the returned address over TCP and UDP alike, never the name, so a
        name that answers differently the next time (DNS rebinding) cannot redirect the probe.
        The returned spelling is canonical: one device is one ``/probe`` cache entry however
        the target was written.  A configured device is allowed whatever it resolves to (and
        dialled by name if it does not resolve: it is then reported down, as on /metrics).
        """
        host, port = self.normalise(target)
        configured = (host, port) in self._configured
        try:
            addresses = [_ip(host)]
        except ValueError:
            try:
                addresses = [_ip(a) for a in self._resolve(host, port)]
            except (OSError, ValueError) as e:
                if configured:
                    return format_address(host, port)
                raise TargetNotAllowed(f"target {target!r} does not resolve: {e}") from None
            if not addresses:
                if configured:
                    return format_address(host, port)
                raise TargetNotAllowed(f"target {target!r} does not resolve")
        for ip in [] if configured else addresses:
            plain = ipaddress.ip_address(str(ip).split("%")[0])
            if not any(rule.allows(plain, port) for rule in self.rules):
                raise TargetNotAllowed(
                    f"target {target!r} ({plain} port {port}) is not allowed; allow it with {FLAG} (allowed: "
                    + ", ".join(str(r) for r in self.rules) + ")"
                )
        return format_address(str(addresses[0]), port)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address (IPv6 zone id kept, for dialling a link-local device)."""
    return ipaddress.ip_address(text)
