"""Which targets ``/probe`` may dial: the exporter must not become an open relay.

A probe makes the exporter connect to an address a stranger chose.  Targets must match an
allowlist rule, ``NETWORK[/PREFIX]`` optionally followed by ``:PORT`` or ``:*`` (any port); IPv6
in brackets (``[fd00::]/8:*``, ``[::1]:65001``).  A rule without a port allows port 65001 only.
The default allows loopback and the private ranges on port 65001.  A host name is resolved and
every address it resolves to must be allowed.  Configured devices are always allowed.

A name is resolved under the probe's deadline: ``getaddrinfo`` has no timeout, so it runs on
one of :data:`RESOLVER_THREADS` worker threads and the probe gives up at its deadline
(:class:`ResolveTimeout`, HTTP 503) while the lookup finishes on its own.

A device id (``1050ABCE``) is accepted only when it names a configured device: the exporter
never searches the network for an id a stranger sends.
"""

from __future__ import annotations

import ipaddress
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from otel_bare_metal.address import canonical_host
from otel_bare_metal.hdhr import DEFAULT_PORT, format_address, parse_address, parse_device_id

DEFAULT_RULES = (
    "127.0.0.0/8", "[::1]", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "[fc00::]/7",
)
FLAG = "--hdhomerun.allow-target"


class TargetNotAllowed(Exception):
    """The target is well-formed but outside the allowlist (HTTP 403)."""


class ResolveTimeout(Exception):
    """The target's name did not resolve before the probe's deadline (HTTP 503)."""


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
    return list(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


#: Threads that run name lookups for probes; lookups past them wait in a queue of
#: RESOLVER_QUEUE, and a probe whose lookup cannot even be queued gets 503 at once.
RESOLVER_THREADS = 4
RESOLVER_QUEUE = 256


class _Lookup:
    __slots__ = ("host", "port", "resolver", "done", "result", "error", "abandoned")

    def __init__(self, host: str, port: int, resolver: Resolver):
        self.host, self.port, self.resolver = host, port, resolver
        self.done = threading.Event()
        self.result: list[str] = []
        self.error: BaseException | None = None
        self.abandoned = False


class BoundedResolver:
    """Runs lookups on at most ``threads`` daemon threads, so a caller can stop waiting at its
    deadline (``getaddrinfo`` cannot be interrupted) and a lookup that hangs holds one worker,
    never the caller.  Daemon threads: a hung lookup never delays the process's exit."""

    def __init__(self, threads: int = RESOLVER_THREADS, queued: int = RESOLVER_QUEUE):
        self._jobs: queue.Queue[_Lookup] = queue.Queue(queued)
        self._threads = threads
        self._started = 0
        self._lock = threading.Lock()

    def resolve(self, resolver: Resolver, host: str, port: int, deadline: float | None) -> list[str]:
        if deadline is None:
            return resolver(host, port)
        job = _Lookup(host, port, resolver)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise ResolveTimeout(f"too many name lookups in progress to resolve {host!r}") from None
        self._start_worker()
        if not job.done.wait(max(0.0, deadline - time.monotonic())):
            job.abandoned = True  # a worker that has not started it yet skips it
            raise ResolveTimeout(f"{host!r} did not resolve before the probe's deadline")
        if job.error is not None:
            raise job.error
        return job.result

    def _start_worker(self) -> None:
        with self._lock:
            if self._started >= self._threads:
                return
            self._started += 1
        threading.Thread(target=self._work, name="probe-resolver", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job.abandoned:
                continue
            try:
                job.result = job.resolver(job.host, job.port)
            except BaseException as e:  # handed to the caller, who raises it
                job.error = e
            job.done.set()


#: The resolver every Allowlist uses for probes, and devices for the names they dial.
RESOLVER = BoundedResolver()


def resolve_within(host: str, port: int, timeout: float) -> str:
    """The first address ``host`` resolves to, or :class:`TimeoutError` after ``timeout``
    seconds (an IP address is returned as it is).  A device given by name is dialled through
    this, so its name lookup is bounded like every other step of a read."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return host
    except ValueError:
        pass
    try:
        found = RESOLVER.resolve(lambda h, p: resolve(h, p), host, port, time.monotonic() + timeout)
    except ResolveTimeout as e:
        raise TimeoutError(str(e)) from None
    if not found:
        raise OSError(f"{host!r} does not resolve")
    return found[0]


def connect_within(address: tuple[str, int], timeout: float) -> socket.socket:
    """``socket.create_connection`` whose name lookup is bounded by ``timeout`` too (the
    client's ``connect``)."""
    started = time.monotonic()
    host, port = address
    ip = resolve_within(host, port, timeout)
    sock = socket.create_connection((ip, port), timeout=max(0.001, timeout - (time.monotonic() - started)))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - not every socket type supports it
        pass
    return sock


class Allowlist:
    def __init__(self, rules: Iterable[str] = DEFAULT_RULES, configured: Iterable[str] = (), resolver: Resolver = resolve,
                 lookups: BoundedResolver | None = None):
        self.rules = [parse_rule(r) for r in rules]
        self._configured: dict[tuple[str, int] | str, str] = {}
        for a in configured:
            key = self.normalise(a)
            self._configured[key] = key if isinstance(key, str) else format_address(*key)
        self._resolve = resolver
        self._lookups = lookups or RESOLVER

    @staticmethod
    def normalise(address: str) -> tuple[str, int] | str:
        """``(host, port)`` with the host canonical (:func:`~otel_bare_metal.address.canonical_host`),
        or a device id as 8 upper-case hex digits."""
        device_id = parse_device_id(address)
        if device_id is not None:
            return f"{device_id:08X}"
        host, port = parse_address(address)
        return canonical_host(host), port

    def check(self, target: str, deadline: float | None = None) -> str:
        """The one device name to probe for ``target``: ``ip:port`` (``[v6]:port``) to dial, or a
        configured device's own name; raise ValueError (malformed, HTTP 400), TargetNotAllowed
        (HTTP 403) or ResolveTimeout (HTTP 503: the name did not resolve before ``deadline``,
        a ``time.monotonic()`` value).

        A host name is resolved **once**, here; every address it resolves to must be allowed,
        and the caller dials the returned address over TCP and UDP alike, never the name, so a
        name that answers differently the next time (DNS rebinding) cannot redirect the probe.
        The returned spelling is canonical: one device is one ``/probe`` cache entry and one
        label value however the target was written.  A configured device (by address, name or
        device id) is allowed whatever it resolves to and keeps the name ``/metrics`` gives it.
        """
        key = self.normalise(target)
        if key in self._configured:
            return self._configured[key]
        if isinstance(key, str):
            raise TargetNotAllowed(f"device id {key} is not a configured device (--hdhomerun.device)")
        host, port = key
        try:
            addresses = [_ip(host)]
        except ValueError:
            try:
                found = self._lookups.resolve(self._resolve, host, port, deadline)
                addresses = [_ip(canonical_host(a)) for a in found]
            except (OSError, ValueError) as e:
                raise TargetNotAllowed(f"target {target!r} does not resolve: {e}") from None
            if not addresses:
                raise TargetNotAllowed(f"target {target!r} does not resolve")
        for ip in addresses:
            plain = ipaddress.ip_address(str(ip).split("%")[0])
            if not any(rule.allows(plain, port) for rule in self.rules):
                raise TargetNotAllowed(
                    f"target {target!r} ({plain} port {port}) is not allowed; allow it with {FLAG} (allowed: "
                    + ", ".join(str(r) for r in self.rules) + ")"
                )
        return format_address(str(addresses[0]), port)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address (a link-local IPv6 address keeps its canonical zone id, for dialling it)."""
    return ipaddress.ip_address(text)
