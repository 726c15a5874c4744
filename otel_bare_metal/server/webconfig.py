"""``--web.config.file``: TLS, basic auth and response headers, in the Prometheus exporter-toolkit format.

The file is the ``web-config.yml`` that node_exporter and the other official exporters accept
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md)::

    tls_server_config:
      cert_file: server.crt            # relative paths are relative to this file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
      min_version: TLS12               # TLS10, TLS11, TLS12 (default), TLS13
      max_version: TLS13
    http_server_config:
      headers:
        X-Content-Type-Options: nosniff
    basic_auth_users:
      prometheus: $2b$10$...           # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

As in exporter-toolkit, unknown keys (and duplicate keys) are errors, and TLS is on as soon as any of
``cert_file``, ``key_file``, ``client_ca_file`` or ``client_auth_type`` is set.

Where Python's :mod:`ssl` cannot do what Go's ``crypto/tls`` does:

* ``RequestClientCert`` (ask for a certificate, accept any or none): ``ssl`` cannot ask for a certificate
  without verifying it, so the server does not ask (``CERT_NONE``). Either way every client gets in.
* ``RequireAnyClientCert`` (demand a certificate, do not verify it): mapped to ``CERT_REQUIRED``, so the
  certificate must also chain to ``client_ca_file``, which is therefore required. Stricter, never looser.
* ``VerifyClientCertIfGiven`` → ``CERT_OPTIONAL``, ``RequireAndVerifyClientCert`` → ``CERT_REQUIRED``: exact.
  Go verifies against the system roots when ``client_ca_file`` is missing; we refuse the config instead.
* ``client_allowed_sans`` is checked right after the handshake (Go does it inside the handshake).
* ``cipher_suites``, ``curve_preferences`` and ``rate_limit`` (an interval other than 0) are accepted,
  ignored and logged as a warning; ``prefer_server_cipher_suites`` and ``http_server_config.http2`` are
  accepted silently (the server prefers its own ciphers and speaks HTTP/1.1 only). OpenSSL's defaults
  apply. ``TLS10``/``TLS11`` are accepted but OpenSSL 3 at its usual security level will not negotiate them.
* Inline ``cert``, ``key`` and ``client_ca`` PEM strings are refused with a clear error (``ssl`` only
  loads certificate chains from files); use the ``*_file`` keys.
* A plain-HTTP request to a TLS port fails the handshake and the connection is closed (Go answers
  "400 Client sent an HTTP request to an HTTPS server"); either way no data is served.

Reloading: :class:`WebConfigWatcher` loads the file (and the certificate, key and CA files it names) on
a thread of its own, ``web-config``, never on the server's threads, and swaps the new config in whole. It
reloads when any of those files changed (checked with ``stat`` on every connection and request, like
exporter-toolkit re-reads the file per request) and when :meth:`WebConfigWatcher.reload` asks (SIGHUP: the
handler only sets a flag). A request that sees a change waits for the new config (at most its own deadline);
a new connection is served with the config in force and the next one gets the new one. A file that fails to
load for any reason (unreadable, not a regular file — a FIFO is never waited on —, bad YAML, nesting too
deep, a NUL in a path, a bad certificate) keeps the previous good config and logs one error. Turning TLS on or
off needs a restart (exporter-toolkit decides TLS or plain once, at start, too): a reload that would do it
is refused with an error. A reload that turns basic auth off (no ``basic_auth_users`` left) is applied,
with a warning.

Basic auth under load: bcrypt checks run one at a time (a flood of bad passwords costs at most one core).
At most :data:`~otel_bare_metal.limits.AUTH_WAITING` requests wait for one, each no longer than its deadline
(its ``X-Prometheus-Scrape-Timeout-Seconds``, else 10 s); the newest waiter is checked first and a full
queue pushes its oldest waiter out; a request pushed out or past its deadline gets ``503``. Accepted and
refused credentials are both remembered (keyed HMACs, in two bounded caches, so refusals cannot push out
the right password), so a repeated wrong password costs no bcrypt run. The right password sent after a
burst of distinct wrong ones is therefore checked after at most the one check running when it arrives,
unless more new credentials arrive while it waits (bench/auth_burst.py measures it).

Replace the file atomically: write a temporary file in the same directory, then ``mv`` it over the old
one (``rename(2)``), as Kubernetes does for mounted Secrets. A file rewritten in place can be read
half-written; an empty read is refused, but a truncated one may parse as a config without users, which
turns auth off until the rest is written (that is what the warning is for).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import ssl
import stat
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, cast

import bcrypt
import yaml

from otel_bare_metal import limits
from otel_bare_metal.logutil import fields
from otel_bare_metal.server.messages import Response

log = logging.getLogger(__name__)

__all__ = [
    "CLIENT_AUTH_TYPES",
    "TLS_VERSIONS",
    "UNAUTHORIZED_HEADERS",
    "TLSServerConfig",
    "WebConfig",
    "WebConfigError",
    "WebConfigWatcher",
    "AuthBusy",
    "check_client_sans",
    "dummy_hash",
    "load_web_config",
]

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's tls.ClientAuthType names → ssl verify mode (see the module docstring for the approximations).
CLIENT_AUTH_TYPES: dict[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireClientCert": ssl.CERT_REQUIRED,  # exporter-toolkit's old name for RequireAnyClientCert
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_NEEDS_CA = {"RequireAnyClientCert", "RequireClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}

# The headers exporter-toolkit lets one set, with their allowed values (None: any value).
_ALLOWED_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}

_TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"}
_TLS_KEYS = {
    "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
    "client_allowed_sans", "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
    "curve_preferences",
}  # fmt: skip
_HTTP_KEYS = {"http2", "headers"}
_RATE_LIMIT_KEYS = {"interval", "burst"}

# $2a$/$2b$/$2y$, two-digit cost, 22 characters of salt and 31 of hash.
_BCRYPT_RE = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
# Unknown users are checked against a dummy hash of the same cost as the configured users, so that a
# wrong user name costs as much as a wrong password (exporter-toolkit's fixed cost-10 dummy lets timing
# tell which names exist when the real hashes cost more). One per cost, made at load time.
_dummy_hashes: dict[int, bytes] = {}
_dummy_lock = threading.Lock()


def _bcrypt_cost(hashed: str) -> int:
    return int(hashed[4:6])


def dummy_hash(cost: int) -> bytes:
    """A bcrypt hash of a random password at ``cost`` (cached: making one costs one bcrypt run)."""
    with _dummy_lock:
        if cost not in _dummy_hashes:
            _dummy_hashes[cost] = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        return _dummy_hashes[cost]

UNAUTHORIZED_HEADERS: dict[str, str] = {"WWW-Authenticate": 'Basic realm="otel-bare-metal"'}

AUTH_CACHE_SIZE = limits.AUTH_CACHE


class WebConfigError(Exception):
    """A web config file that cannot be used. ``str()`` is one line naming the file and the problem."""

    def __init__(self, path: str, problem: str, files: tuple[str, ...] = ()):
        self.path = path
        self.problem = " ".join(str(problem).split())
        self.files = files  # certificate/key/CA files the broken config names, to watch for changes
        super().__init__(f"web config {path}: {self.problem}")


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    client_allowed_sans: tuple[str, ...] | None = None


class AuthBusy(Exception):
    """The bcrypt check could not start before the request's deadline, or too many requests wait for one."""


class _AuthCache:
    """Bounded LRU sets of keyed digests of (user, stored hash, password): those bcrypt accepted and,
    apart, those it refused.

    The digest is an HMAC with a per-process random key: no password is kept (exporter-toolkit keeps it
    hex-encoded in its cache key) and the lookup's timing tells nothing useful. The stored hash is part of
    the key, so a changed password invalidates the entry. Refusals have their own cache, so a flood of
    wrong passwords cannot push the right one out."""

    def __init__(self, size: int = AUTH_CACHE_SIZE, failures: int = limits.AUTH_FAILURES_CACHE):
        self._key = secrets.token_bytes(32)
        self._ok: limits.BoundedCache[bytes, bool] = limits.BoundedCache(size)
        self._bad: limits.BoundedCache[bytes, bool] = limits.BoundedCache(failures)
        self._lock = threading.Lock()

    def digest(self, user: bytes, hashed: bytes, password: bytes) -> bytes:
        msg = b"".join(len(part).to_bytes(4, "big") + part for part in (user, hashed, password))
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def lookup(self, digest: bytes) -> bool | None:
        """True: accepted before; False: refused before; None: not known (a hit counts as a use)."""
        with self._lock:
            if self._ok.get(digest) is not None:
                return True
            if self._bad.get(digest) is not None:
                return False
        return None

    def __contains__(self, digest: bytes) -> bool:
        return self.lookup(digest) is True

    def add(self, digest: bytes, ok: bool = True) -> None:
        with self._lock:
            (self._ok if ok else self._bad).put(digest, True)

    def __len__(self) -> int:
        return len(self._ok)

    @property
    def failures(self) -> int:
        return len(self._bad)


class _Waiter:
    __slots__ = ("turn", "granted")

    def __init__(self) -> None:
        self.turn = threading.Event()
        self.granted = False  # set with ``turn``: True handed the gate, False pushed out of the queue


class _Gate:
    """One holder at a time; at most ``max_waiting`` wait, none past its deadline. The newest waiter goes
    first and, when the queue is full, the oldest is pushed out: after a burst, the request that comes
    next (the scraper's) is checked next instead of behind the whole burst."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._lock = threading.Lock()
        self._held = False
        self._queue: deque[_Waiter] = deque()  # oldest on the left

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def acquire(self, deadline: float) -> bool:
        """True when held; False when pushed out of a full queue or ``deadline`` (monotonic) passed first."""
        with self._lock:
            if not self._held and not self._queue:
                self._held = True
                return True
            if self.max_waiting <= 0:
                return False
            if len(self._queue) >= self.max_waiting:
                self._queue.popleft().turn.set()  # granted stays False: refused
            me = _Waiter()
            self._queue.append(me)
        me.turn.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            if me.turn.is_set():
                return me.granted
            self._queue.remove(me)
            return False

    def release(self) -> None:
        with self._lock:
            if self._queue:
                waiter = self._queue.pop()  # the newest: the gate passes straight to it
                waiter.granted = True
                waiter.turn.set()
            else:
                self._held = False


# bcrypt is CPU-heavy: run one at a time, as exporter-toolkit does, so a flood of bad passwords costs at
# most one core.
_bcrypt_gate = _Gate(limits.AUTH_WAITING)


@dataclass(eq=False)
class WebConfig:
    """One loaded, validated web config. Immutable in use; share it between threads freely."""

    path: str | None = None
    tls: TLSServerConfig | None = None
    headers: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # user → bcrypt hash
    dummy: bytes = b""  # the hash unknown users are checked against: the highest cost among ``users``
    files: tuple[str, ...] = ()  # certificate, key and CA files (absolute), watched for changes
    _context: ssl.SSLContext | None = field(default=None, repr=False)
    _cache: _AuthCache = field(default_factory=_AuthCache, repr=False)

    @property
    def tls_enabled(self) -> bool:
        return self.tls is not None

    @property
    def auth_enabled(self) -> bool:
        return bool(self.users)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server-side context (built and checked at load), or None when TLS is off."""
        return self._context

    def authorized(self, authorization_header: str | None, deadline: float | None = None) -> bool:
        """Whether an ``Authorization`` header value passes basic auth (always True without users).
        Raises :class:`AuthBusy` when a bcrypt check is needed and cannot start before ``deadline``
        (monotonic; default: :data:`~otel_bare_metal.limits.AUTH_WAIT_SECONDS` from now)."""
        if not self.users:
            return True
        credentials = _parse_basic(authorization_header)
        if credentials is None:
            return False
        user, password = credentials
        stored = None
        for name, hashed in self.users.items():  # compare every name in constant time, keep the match
            if hmac.compare_digest(name.encode("utf-8"), user):
                stored = hashed.encode("ascii")
        known = stored is not None
        hashed_pw = stored if stored is not None else (self.dummy or dummy_hash(max(map(_bcrypt_cost, self.users.values()))))
        password = password[:72]  # bcrypt's limit; Go's CompareHashAndPassword truncates the same way
        digest = self._cache.digest(user, hashed_pw, password)
        seen = self._cache.lookup(digest)
        if seen is not None:
            return seen and known
        if not _bcrypt_gate.acquire(time.monotonic() + limits.AUTH_WAIT_SECONDS if deadline is None else deadline):
            raise AuthBusy("too many requests wait for a password check")
        try:
            try:
                ok = bcrypt.checkpw(password, hashed_pw)
            except ValueError:
                ok = False
        finally:
            _bcrypt_gate.release()
        ok = ok and known
        self._cache.add(digest, ok)
        return ok


def _parse_basic(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip().encode("latin-1"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user, password


# --- loading --------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (Go's yaml.UnmarshalStrict does) and keeps scalar keys as
    their text: every mapping in the format has string keys, so a user named ``yes``, ``on`` or ``123``
    stays that string (Go decodes them so into its ``map[string]...``)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            key = key_node.value
        else:
            key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in mapping
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, f"unhashable key {key!r}", key_node.start_mark)
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Encrypted(Exception):
    pass


def _no_password() -> bytes:
    raise _Encrypted


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and check ``path``: the YAML, every key, the certificate/key pair, the CA, the hashes.

    Raises :class:`WebConfigError` (one line) on any problem. An empty file is a valid, empty config."""
    return _load(os.fspath(path), allow_empty=True)


def read_regular_file(path: str, limit: int = limits.WEB_CONFIG_BYTES) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes. Opened without
    blocking, so a FIFO (or a device) put in its place is refused instead of waited on. ``OSError``
    (``ValueError`` for a path with a NUL) on any problem."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        if info.st_size > limit:
            raise OSError(0, f"larger than {limit} bytes")
        chunks, size = [], 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise OSError(0, f"larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _load(path: str, allow_empty: bool) -> WebConfig:
    """:func:`_load_checked`, with every failure (a NUL in a path, YAML nested too deep, ...) turned
    into one :class:`WebConfigError`."""
    try:
        return _load_checked(path, allow_empty)
    except WebConfigError:
        raise
    except RecursionError:
        raise WebConfigError(path, "invalid YAML: nested too deeply") from None
    except Exception as e:
        raise WebConfigError(path, f"cannot load: {type(e).__name__}: {e}") from None


def _load_checked(path: str, allow_empty: bool) -> WebConfig:
    try:
        text = read_regular_file(path)
    except (OSError, ValueError) as e:
        raise WebConfigError(path, f"cannot read: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise WebConfigError(path, f"invalid YAML: {_yaml_problem(e)}") from None
    if data is None:
        if not allow_empty:
            # Most likely caught half-written (truncated, not yet filled): an empty config would drop
            # TLS and auth. Write "{}" to really empty it.
            raise WebConfigError(path, "the file is empty (being written? replace it atomically)")
        data = {}
    c = _Checker(path)
    c.mapping(data, "", _TOP_KEYS)
    base = os.path.dirname(os.path.abspath(path))

    headers = _load_headers(c, data.get("http_server_config"))
    users = _load_users(c, data.get("basic_auth_users"))
    rate_limit = data.get("rate_limit")
    if rate_limit is not None:
        c.mapping(rate_limit, "rate_limit", _RATE_LIMIT_KEYS)
        if rate_limit.get("interval") not in (None, 0, "0", "0s"):
            log.warning("web config: rate_limit is not supported and is ignored", extra=fields(path=path))
    tls, context, files = _load_tls(c, data.get("tls_server_config"), base)
    dummy = dummy_hash(max(map(_bcrypt_cost, users.values()))) if users else b""
    return WebConfig(path=path, tls=tls, headers=headers, users=users, dummy=dummy, files=files, _context=context)


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is not None:
        return f"{problem} at line {mark.line + 1} column {mark.column + 1}"
    return problem


class _Checker:
    def __init__(self, path: str):
        self.path = path
        self.files: tuple[str, ...] = ()

    def fail(self, problem: str) -> WebConfigError:
        return WebConfigError(self.path, problem, self.files)

    def mapping(self, value: Any, where: str, keys: set[str] | None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(f"{where or 'the file'} must be a mapping, not {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(f"key {key!r} in {where or 'the file'} is not a string")
            if keys is not None and key not in keys:
                inside = f" in {where}" if where else ""
                raise self.fail(f"unknown key {key!r}{inside} (known: {', '.join(sorted(keys))})")
        return value

    def string(self, section: dict, key: str, where: str) -> str | None:
        value = section.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key} must be a string, not {_kind(value)}")
        return value

    def strings(self, section: dict, key: str, where: str) -> tuple[str, ...] | None:
        value = section.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{where}.{key} must be a list of strings")
        return tuple(value)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)  # fmt: skip


def _load_headers(c: _Checker, http: Any) -> dict[str, str]:
    if http is None:
        return {}
    c.mapping(http, "http_server_config", _HTTP_KEYS)
    if http.get("http2") is not None and not isinstance(http["http2"], bool):
        raise c.fail("http_server_config.http2 must be true or false")
    headers = http.get("headers")
    if headers is None:
        return {}
    c.mapping(headers, "http_server_config.headers", None)
    out: dict[str, str] = {}
    for name, value in headers.items():
        if name not in _ALLOWED_HEADERS:
            raise c.fail(f"HTTP header {name!r} can not be configured (allowed: {', '.join(_ALLOWED_HEADERS)})")
        if value is None or value == "":
            continue  # "unset if blank"
        if isinstance(value, bool):  # Go decodes any scalar into a string field
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise c.fail(f"HTTP header {name!r} must be a one-line string")
        allowed = _ALLOWED_HEADERS[name]
        if allowed is not None and value not in allowed:
            raise c.fail(f"invalid value {value!r} for HTTP header {name!r}: expected one of {', '.join(allowed)}")
        out[name] = value
    return out


def _load_users(c: _Checker, users: Any) -> dict[str, str]:
    if users is None:
        return {}
    c.mapping(users, "basic_auth_users", None)
    out: dict[str, str] = {}
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not _BCRYPT_RE.match(hashed):
            raise c.fail(f"basic_auth_users: the password of user {user!r} is not a bcrypt hash")
        out[user] = hashed
    return out


def _load_tls(c: _Checker, tls: Any, base: str) -> tuple[TLSServerConfig | None, ssl.SSLContext | None, tuple]:
    if tls is None:
        return None, None, ()
    where = "tls_server_config"
    c.mapping(tls, where, _TLS_KEYS)
    for inline in ("cert", "key", "client_ca"):
        if tls.get(inline):
            raise c.fail(f"{where}.{inline} (inline PEM) is not supported; use {inline}_file")

    def file(key: str) -> str | None:
        value = c.string(tls, key, where)
        return os.path.normpath(os.path.join(base, value)) if value else None  # absolute paths stay

    cert_file, key_file, ca_file = file("cert_file"), file("key_file"), file("client_ca_file")
    c.files = tuple(f for f in (cert_file, key_file, ca_file) if f)
    auth = c.string(tls, "client_auth_type", where)
    if not (cert_file or key_file or ca_file or auth):
        return None, None, ()  # as exporter-toolkit: no TLS unless one of these is set
    auth = auth or "NoClientCert"
    if auth not in CLIENT_AUTH_TYPES:
        raise c.fail(f"invalid client_auth_type {auth!r} (want one of {', '.join(CLIENT_AUTH_TYPES)})")
    if not cert_file:
        raise c.fail(f"{where}: missing cert_file")
    if not key_file:
        raise c.fail(f"{where}: missing key_file")
    if ca_file and auth == "NoClientCert":
        raise c.fail(f"{where}: client_ca_file is set but client_auth_type is {auth}")
    if auth in _NEEDS_CA and not ca_file:
        raise c.fail(f"{where}: client_auth_type {auth} needs client_ca_file")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        value = c.string(tls, key, where) or default
        if value not in TLS_VERSIONS:
            raise c.fail(f"invalid {key} {value!r} (want one of {', '.join(TLS_VERSIONS)})")
        versions[key] = value
    if TLS_VERSIONS[versions["min_version"]] > TLS_VERSIONS[versions["max_version"]]:
        raise c.fail(f"min_version {versions['min_version']} is above max_version {versions['max_version']}")
    sans = c.strings(tls, "client_allowed_sans", where)
    if sans is not None and CLIENT_AUTH_TYPES[auth] != ssl.CERT_REQUIRED:
        raise c.fail("client_allowed_sans needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert")
    for ignored in ("cipher_suites", "curve_preferences"):
        if c.strings(tls, ignored, where):
            log.warning("web config: a setting is not supported and is ignored (OpenSSL defaults apply)",
                        extra=fields(path=c.path, setting=f"{where}.{ignored}"))
    prefer = tls.get("prefer_server_cipher_suites")
    if prefer is not None and not isinstance(prefer, bool):
        raise c.fail(f"{where}.prefer_server_cipher_suites must be true or false")

    config = TLSServerConfig(
        cert_file=cert_file,
        key_file=key_file,
        client_auth_type=auth,
        client_ca_file=ca_file,
        min_version=versions["min_version"],
        max_version=versions["max_version"],
        client_allowed_sans=sans,
    )
    return config, _build_context(c, config), c.files


def _build_context(c: _Checker, config: TLSServerConfig) -> ssl.SSLContext:
    for key in ("cert_file", "key_file", "client_ca_file"):
        name = getattr(config, key)
        if name is None:
            continue
        try:
            read_regular_file(name)
        except (OSError, ValueError) as e:
            raise c.fail(f"cannot read {key} {name}: {getattr(e, 'strerror', None) or e}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    try:
        ctx.minimum_version = TLS_VERSIONS[config.min_version]
        ctx.maximum_version = TLS_VERSIONS[config.max_version]
    except (ValueError, ssl.SSLError) as e:
        raise c.fail(f"TLS versions {config.min_version}..{config.max_version} not available: {e}") from None
    try:
        ctx.load_cert_chain(config.cert_file, config.key_file, password=_no_password)
    except _Encrypted:
        raise c.fail(f"key_file {config.key_file} is encrypted; use an unencrypted key") from None
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e):
            raise c.fail(f"key_file {config.key_file} does not match cert_file {config.cert_file}") from None
        if "PEM lib" in str(e):
            raise c.fail(f"cert_file {config.cert_file} or key_file {config.key_file} is not a PEM certificate"
                         " or key") from None  # fmt: skip
        raise c.fail(f"cannot load cert_file {config.cert_file} / key_file {config.key_file}: {e}") from None
    if config.client_ca_file:
        try:
            ctx.load_verify_locations(cafile=config.client_ca_file)
        except ssl.SSLError as e:
            raise c.fail(f"cannot load client_ca_file {config.client_ca_file}: {e}") from None
    ctx.verify_mode = CLIENT_AUTH_TYPES[config.client_auth_type]
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# --- reloading and serving ------------------------------------------------------------------------

_Signature = tuple


def _signature(paths: tuple[str, ...]) -> _Signature:
    out: list[tuple[object, ...]] = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((p, st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev, st.st_ctime_ns))
        except (OSError, ValueError) as e:  # ValueError: a NUL in the path
            out.append((p, getattr(e, "errno", None)))
    return tuple(out)


class _Request(Protocol):
    """What :meth:`WebConfigWatcher.authorize` reads of a server request."""

    received: float

    def header(self, name: str, default: str = "") -> str: ...


class WebConfigWatcher:
    """The current :class:`WebConfig` of ``path``, reloaded off the server's threads when the file or a
    file it names changes, or when :meth:`reload` asks.

    The constructor loads the file and raises :class:`WebConfigError` if it is broken (one line: print
    it and exit 1). Afterwards a broken file never replaces a good config: it is logged once and the
    previous config stays in force until the file is fixed.

    The server is wired to it through :meth:`ssl_context`, :meth:`verify_peer`, :meth:`authorize` and
    :meth:`response_headers`.
    """

    POLL = 0.25  # seconds between two looks at the reload flag by the loader thread

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # one load at a time
        self._changed = threading.Condition(threading.Lock())  # notified after every load attempt
        self._attempts = 0
        self._wanted = threading.Event()  # a stale signature was seen: load now
        self._flag = False  # set by reload(), which a signal handler calls
        self._thread: threading.Thread | None = None
        self._closed = False
        sig = _signature((self.path,))
        self._config = load_web_config(self.path)
        self._watched = (self.path, *self._config.files)
        # Stat the named files now: a change between reading the config and here is picked up next time.
        self._sig = sig + _signature(self._config.files)
        self._start()

    @property
    def config(self) -> WebConfig:
        return self.current()

    def current(self) -> WebConfig:
        """The config in force now. Never waits: a change seen here (a few ``stat`` calls) is loaded by
        the loader thread."""
        if self._stale():
            self._kick()
        return self._config

    def fresh(self, deadline: float | None = None) -> WebConfig:
        """The config in force, after waiting (until ``deadline``, monotonic) for the loader to take in a
        change seen now. For request threads: what a request is checked against follows the file."""
        end = time.monotonic() + 5.0 if deadline is None else deadline
        while self._stale():  # again after each attempt: the file may have changed during a load
            with self._changed:
                seen = self._attempts
            self._kick()
            with self._changed:
                while self._attempts == seen and (left := end - time.monotonic()) > 0:
                    self._changed.wait(left)
            if time.monotonic() >= end:
                break
        return self._config

    def reload(self) -> None:
        """Ask for a reload (SIGHUP). Safe in a signal handler: it only sets a flag, which the loader
        thread looks at every :attr:`POLL` seconds."""
        self._flag = True

    def reload_now(self) -> bool:
        """Load the file on this thread now. False, with the error logged, if it is broken."""
        with self._lock:
            ok = self._reload_locked()
        with self._changed:
            self._attempts += 1
            self._changed.notify_all()
        return ok

    def close(self) -> None:
        """Stop the loader thread (it also ends by itself once the watcher is garbage)."""
        self._closed = True
        self._wanted.set()

    def _stale(self) -> bool:
        return _signature(self._watched) != self._sig

    def _kick(self) -> None:
        self._wanted.set()

    def _start(self) -> None:
        # The thread holds the watcher weakly: a watcher nobody uses any more takes its thread with it.
        self._thread = threading.Thread(target=WebConfigWatcher._run, args=(weakref.ref(self), self._wanted),
                                        name="web-config", daemon=True)  # fmt: skip
        self._thread.start()

    @staticmethod
    def _run(ref: "weakref.ref[WebConfigWatcher]", wanted: threading.Event) -> None:
        while True:
            wanted.wait(WebConfigWatcher.POLL)
            wanted.clear()
            watcher = ref()
            if watcher is None or watcher._closed:
                return
            if watcher._flag or watcher._stale():
                watcher._flag = False
                try:
                    watcher.reload_now()
                except Exception:  # the loader must outlive any bug in one load
                    log.exception("web config reload failed; keeping the previous configuration",
                                  extra=fields(path=watcher.path))
            del watcher

    def _reload_locked(self) -> bool:
        sig_config = _signature((self.path,))
        old = self._config
        try:
            new = _load(self.path, allow_empty=False)
            if new.tls_enabled != old.tls_enabled:
                state = "on" if old.tls_enabled else "off"
                raise WebConfigError(self.path, f"TLS is {state} and cannot be switched by a reload; restart",
                                     new.files)  # fmt: skip
        except WebConfigError as e:
            self._watched = (self.path, *(e.files or old.files))
            self._sig = sig_config + _signature(self._watched[1:])
            log.error("web config reload failed; keeping the previous configuration", extra=fields(path=e.path, err=e.problem))
            return False
        new._cache = old._cache  # entries are keyed by the stored hash, so they stay valid
        self._watched = (self.path, *new.files)
        self._sig = sig_config + _signature(new.files)
        self._config = new  # one assignment: a reader sees the old config or the new one, whole
        if old.auth_enabled and not new.auth_enabled:
            # Most likely a file rewritten in place and read half-way; or meant. Either way, say it loudly.
            log.warning("web config reloaded WITHOUT basic auth: every client may now scrape; replace the file "
                        "atomically (write a temporary file, then rename it)",
                        extra=fields(path=self.path, users_before=len(old.users)))
        else:
            log.info("web config reloaded", extra=fields(path=self.path, tls=new.tls_enabled, users=len(new.users)))
        return True

    # --- the server's hooks -------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for a new connection (None: plain HTTP). Never waits."""
        return self.current().ssl_context()

    def verify_peer(self, tls_sock: ssl.SSLSocket) -> None:
        """After a handshake: ``ssl.SSLError`` unless the client certificate names one of
        ``client_allowed_sans`` (when set)."""
        tls = self._config.tls
        if tls is not None and tls.client_allowed_sans is not None:
            _check_sans(tls_sock, tls.client_allowed_sans)

    def authorize(self, request: _Request) -> Response | None:
        """None when ``request`` may pass; else the response to send (401, or 503 when no bcrypt
        check can start before the request's deadline)."""
        deadline = request.received + _wait_budget(request.header("x-prometheus-scrape-timeout-seconds"))
        try:
            if self.fresh(deadline).authorized(request.header("authorization") or None, deadline):
                return None
        except AuthBusy:
            return Response(503, b"503 too many password checks at once, try again later\n", headers={"Retry-After": "1"})
        return Response(401, b"401 Unauthorized\n", headers=dict(UNAUTHORIZED_HEADERS))

    def response_headers(self) -> Mapping[str, str]:
        return self._config.headers

    # Shortcuts on the current config.
    @property
    def tls_enabled(self) -> bool:
        return self.current().tls_enabled

    @property
    def headers(self) -> dict[str, str]:
        return self.current().headers

    def authorized(self, authorization_header: str | None) -> bool:
        return self.fresh().authorized(authorization_header)


def _wait_budget(header: str) -> float:
    """Seconds a request may wait for its password check: its scrape timeout, else the default."""
    try:
        seconds = float(header)
    except ValueError:
        return limits.AUTH_WAIT_SECONDS
    return min(max(seconds, 0.0), limits.AUTH_WAIT_SECONDS) if seconds == seconds else limits.AUTH_WAIT_SECONDS


def check_client_sans(tls_sock: ssl.SSLSocket, allowed: tuple[str, ...]) -> None:
    """Raise ``ssl.SSLError`` unless the client certificate names one of ``allowed`` (``client_allowed_sans``)."""
    _check_sans(tls_sock, allowed)


def _check_sans(tls_sock: ssl.SSLSocket, allowed: tuple[str, ...]) -> None:
    cert = tls_sock.getpeercert() or {}
    allowed_ips = set()
    for a in allowed:
        try:
            allowed_ips.add(ipaddress.ip_address(a))
        except ValueError:
            pass
    sans = cast("tuple[tuple[str, str], ...]", cert.get("subjectAltName", ()))  # typeshed: a union of every field
    for kind, value in sans:
        value = value.strip()
        if kind == "IP Address":
            try:
                if ipaddress.ip_address(value) in allowed_ips:
                    return
            except ValueError:
                pass
        elif kind in ("DNS", "email", "URI") and value in allowed:
            return
    raise ssl.SSLError("client certificate has none of the SANs in client_allowed_sans")
