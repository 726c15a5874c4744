"""``--web.config.file`` (exporter-toolkit format): parsing, errors, basic auth, TLS and mTLS with real clients.

Certificates are made here with the ``openssl`` tool, bcrypt hashes with the ``bcrypt`` package (cost 4,
for speed). Servers listen on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import bcrypt
import pytest

from helpers import log_text
from otel_bare_metal.server import webconfig
from otel_bare_metal.server.http import HTTPServer, Limits, Request, Response
from otel_bare_metal.server.webconfig import (
    WebConfigError,
    WebConfigWatcher,
    load_web_config,
)

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl not installed")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

# --- certificates ---------------------------------------------------------------------------------

LEAF_EXT = """\
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage={eku}
subjectAltName={san}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key(d: Path, name: str) -> None:
    _openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key")


def _ca(d: Path, name: str) -> None:
    _key(d, name)
    _openssl(d, "req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-days", "2",
             "-out", f"{name}.crt", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip


def _leaf(d: Path, name: str, ca: str, san: str, eku: str) -> None:
    _key(d, name)
    (d / f"{name}.ext").write_text(LEAF_EXT.format(san=san, eku=eku))
    _openssl(d, "req", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-out", f"{name}.csr")
    _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-set_serial", "0x" + secrets.token_hex(8), "-days", "2", "-out", f"{name}.crt",
             "-extfile", f"{name}.ext")  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "otherca")
    _leaf(d, "server", "ca", "DNS:localhost,IP:127.0.0.1", "serverAuth")
    _leaf(d, "server2", "ca", "DNS:localhost,IP:127.0.0.1", "serverAuth")
    _leaf(d, "client", "ca", "DNS:client.example", "clientAuth")
    _leaf(d, "stranger", "otherca", "DNS:client.example", "clientAuth")
    _openssl(d, "pkey", "-in", "server.key", "-aes256", "-passout", "pass:secret", "-out", "encrypted.key")
    return d


@pytest.fixture
def cfgdir(tmp_path: Path, pki: Path) -> Path:
    """A config directory holding copies of the certificates, so tests may replace them."""
    for f in pki.iterdir():
        if f.suffix in (".crt", ".key"):
            shutil.copy(f, tmp_path / f.name)
    return tmp_path


def hash_pw(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write_config(path: Path, text: str) -> Path:
    """Write and make sure the change is visible to a stat-based watcher even within one clock tick."""
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st = path.stat()
    if st.st_mtime_ns <= old:
        os.utime(path, ns=(st.st_atime_ns, old + 1_000_000))
    return path


# --- the exporter's own HTTP server, wired to a watcher -------------------------------------------


def _ok(request: Request) -> Response:
    return Response(200, f"ok {request.path}\n".encode())


@contextlib.contextmanager
def serving(watcher: WebConfigWatcher, handshake_timeout: float = 5.0):
    """Serve /metrics and /healthz with ``watcher``; ``handshake_timeout`` bounds handshake plus request head."""
    server = HTTPServer(
        "127.0.0.1:0", {"/metrics": _ok, "/healthz": _ok}, limits=Limits(head_timeout=handshake_timeout),
        ssl_context=watcher.ssl_context, verify_peer=watcher.verify_peer, authorize=watcher.authorize,
        response_headers=watcher.response_headers,
    )
    server.start()
    try:
        yield server.port
    finally:
        server.shutdown(grace=2)
        assert server._thread is not None and not server._thread.is_alive()


def client_context(pki: Path, cert: str | None = None, **versions) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    for attr, value in versions.items():
        setattr(ctx, attr, value)
    return ctx


def https_get(port: int, path: str, ctx: ssl.SSLContext, auth: str | None = None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": auth} if auth else {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read(), conn.sock.getpeercert()
    finally:
        conn.close()


def http_get(port: int, path: str, auth: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": auth} if auth else {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def curl(url: str, *args: str) -> tuple[int, int, str]:
    """(exit code, HTTP status or 0, response headers) of one curl request."""
    proc = subprocess.run(
        [CURL, "-q", "-sS", "--noproxy", "*", "--connect-timeout", "5", "--max-time", "10",
         "-o", os.devnull, "-D", "-", "-w", "\n%{http_code}", *args, url],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    head, _, code = proc.stdout.rpartition("\n")
    return proc.returncode, int(code or 0), head


# TLS failures surface at the handshake or, with TLS 1.3 client certificates, at the first read.
HANDSHAKE_FAILED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, TimeoutError)

# --- loading --------------------------------------------------------------------------------------


def test_empty_file_is_plain_http_without_auth(tmp_path):
    cfg = load_web_config(write_config(tmp_path / "web.yml", ""))
    assert cfg.ssl_context() is None and not cfg.tls_enabled
    assert cfg.headers == {} and cfg.users == {}
    assert cfg.authorized(None) and cfg.authorized("Basic Zm9vOmJhcg==")


def test_full_config_relative_paths_resolve_against_the_file(cfgdir, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    path = write_config(
        cfgdir / "web.yml",
        f"""
tls_server_config:
  cert_file: server.crt
  key_file: ./server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {cfgdir / "ca.crt"}
  min_version: TLS13
  max_version: TLS13
  prefer_server_cipher_suites: true
http_server_config:
  http2: false
  headers:
    X-Content-Type-Options: nosniff
    X-Frame-Options: deny
    X-XSS-Protection: 0
    Content-Security-Policy: ""
basic_auth_users:
  alice: {hash_pw("a")}
  yes: {hash_pw("y")}
  123: {hash_pw("n")}
""",
    )
    cfg = load_web_config(path)
    assert cfg.tls.cert_file == str(cfgdir / "server.crt")
    assert cfg.tls.key_file == str(cfgdir / "server.key")
    assert cfg.tls.client_ca_file == str(cfgdir / "ca.crt")
    assert cfg.headers == {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "deny", "X-XSS-Protection": "0"}
    assert cfg.authorized(basic("yes", "y")) and cfg.authorized(basic("123", "n"))
    assert list(cfg.users) == ["alice", "yes", "123"]
    ctx = cfg.ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(
    "auth_type, mode",
    [
        ("NoClientCert", ssl.CERT_NONE),
        ("RequestClientCert", ssl.CERT_NONE),
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_client_auth_type_maps_to_verify_mode(cfgdir, auth_type, mode):
    ca = "" if auth_type == "NoClientCert" else "\n  client_ca_file: ca.crt"
    path = write_config(
        cfgdir / "web.yml",
        f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: {auth_type}{ca}
""",
    )
    ctx = load_web_config(path).ssl_context()
    assert ctx.verify_mode == mode
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3


def test_ignored_tls_options_are_accepted_with_a_warning(cfgdir, caplog):
    path = write_config(
        cfgdir / "web.yml",
        """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
  curve_preferences: [X25519]
http_server_config:
  http2: true
rate_limit:
  interval: 1s
  burst: 10
""",
    )
    with caplog.at_level(logging.WARNING, logger=webconfig.__name__):
        assert load_web_config(path).tls_enabled
    text = log_text(caplog.records)
    assert "cipher_suites" in text and "curve_preferences" in text and "rate_limit" in text


def test_tls_section_without_cert_or_auth_keys_is_plain(tmp_path):
    # exporter-toolkit: TLS is on only when cert_file, key_file, client_ca_file or client_auth_type is set.
    cfg = load_web_config(write_config(tmp_path / "web.yml", "tls_server_config:\n  min_version: TLS13\n"))
    assert cfg.ssl_context() is None


def tls(*lines: str, cert: str = "server.crt", key: str = "server.key") -> str:
    """A ``tls_server_config`` section with ``cert_file`` and ``key_file`` (by default a matching pair
    in ``cfgdir``), then ``lines``, one key each."""
    return f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n" + "".join(f"  {line}\n" for line in lines)


ERROR_CASES = {
    "missing file": (None, "cannot read: No such file or directory"),
    "bad yaml": ("tls_server_config: [unclosed\n", "invalid YAML"),
    "tab indentation": ("tls_server_config:\n\tcert_file: x\n", "invalid YAML"),
    "not a mapping": ("- a\n- b\n", "the file must be a mapping, not a list"),
    "unknown top-level key": ("basic_auth_user:\n  a: b\n", "unknown key 'basic_auth_user'"),
    "unknown tls key": ("tls_server_config:\n  cert_fle: server.crt\n", "unknown key 'cert_fle' in tls_server_config"),
    "unknown http key": ("http_server_config:\n  header: {}\n", "unknown key 'header' in http_server_config"),
    "duplicate key": ("basic_auth_users: {}\nbasic_auth_users: {}\n", "duplicate key 'basic_auth_users'"),
    "section not a mapping": ("tls_server_config: server.crt\n", "tls_server_config must be a mapping"),
    "cert missing": (tls(cert="nope.crt"), "cannot read cert_file"),
    "key missing": (tls(key="nope.key"), "cannot read key_file"),
    "cert is a directory": (tls(cert="."), "cannot read cert_file"),
    "cert not PEM": (tls(cert="web.yml"), "is not a PEM certificate or key"),
    "key does not match": (tls(key="client.key"), "does not match cert_file"),
    "key encrypted": (tls(key="encrypted.key"), "is encrypted"),
    "cert without key": ("tls_server_config:\n  cert_file: server.crt\n", "missing key_file"),
    "key without cert": ("tls_server_config:\n  key_file: server.key\n", "missing cert_file"),
    "inline cert": ("tls_server_config:\n  cert: '-----BEGIN'\n", "inline PEM) is not supported"),
    "bad client_auth_type": (tls("client_auth_type: RequireClientCertPlease"), "invalid client_auth_type 'RequireClientCertPlease'"),
    "verify without CA": (tls("client_auth_type: RequireAndVerifyClientCert"), "needs client_ca_file"),
    "CA without client auth": (tls("client_ca_file: ca.crt"), "client_ca_file is set but client_auth_type is NoClientCert"),
    "CA missing": (tls("client_auth_type: RequireAndVerifyClientCert", "client_ca_file: nope.crt"), "cannot read client_ca_file"),
    "CA not PEM": (tls("client_auth_type: RequireAndVerifyClientCert", "client_ca_file: web.yml"), "cannot load client_ca_file"),
    "bad min_version": (tls("min_version: TLS14"), "invalid min_version 'TLS14'"),
    "min above max": (tls("min_version: TLS13", "max_version: TLS12"), "min_version TLS13 is above max_version TLS12"),
    "SANs without required cert": (
        tls("client_auth_type: VerifyClientCertIfGiven", "client_ca_file: ca.crt", "client_allowed_sans: [a]"),
        "client_allowed_sans needs",
    ),
    "plain-text password": ("basic_auth_users:\n  alice: secret\n", "password of user 'alice' is not a bcrypt hash"),
    "2x hash": ("basic_auth_users:\n  alice: $2x$04$" + "a" * 53 + "\n", "is not a bcrypt hash"),
    "md5 hash": ("basic_auth_users:\n  alice: $apr1$abc$0123456789012345678901\n", "is not a bcrypt hash"),
    "empty password": ("basic_auth_users:\n  alice:\n", "is not a bcrypt hash"),
    "users not a mapping": ("basic_auth_users: [alice]\n", "basic_auth_users must be a mapping"),
    "header not allowed": (
        "http_server_config:\n  headers:\n    X-Powered-By: me\n",
        "'X-Powered-By' can not be configured",
    ),
    "header bad value": ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "invalid value 'allow'"),
    "http2 not bool": ("http_server_config:\n  http2: maybe\n", "http2 must be true or false"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_broken_config_is_a_one_line_error(cfgdir, case):
    text, expected = ERROR_CASES[case]
    path = cfgdir / "web.yml"
    if text is not None:
        write_config(path, text)
    with pytest.raises(WebConfigError) as info:
        load_web_config(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    assert expected in message, message
    with pytest.raises(WebConfigError):
        WebConfigWatcher(path)  # the server refuses to start the same way


# --- basic auth -----------------------------------------------------------------------------------


@pytest.fixture
def users_config(tmp_path):
    return load_web_config(
        write_config(
            tmp_path / "web.yml",
            f"""
basic_auth_users:
  alice: {hash_pw("wonderland")}
  "bob:colon": {hash_pw("pass:with:colons")}
  ünï: {hash_pw("çødé")}
""",
        )
    )


def test_basic_auth(users_config):
    cfg = users_config
    assert cfg.authorized(basic("alice", "wonderland"))
    assert cfg.authorized("basic " + basic("alice", "wonderland").split()[1])  # scheme is case-insensitive
    assert cfg.authorized(basic("ünï", "çødé"))
    assert not cfg.authorized(basic("alice", "Wonderland"))
    assert not cfg.authorized(basic("alice", ""))
    assert not cfg.authorized(basic("mallory", "wonderland"))
    assert not cfg.authorized(None)
    assert not cfg.authorized("")
    assert not cfg.authorized("Bearer abc")
    assert not cfg.authorized("Basic !!!not-base64")
    assert not cfg.authorized("Basic " + base64.b64encode(b"alice").decode())  # no colon
    # The user name ends at the first colon, as in RFC 7617 and Go's BasicAuth.
    assert not cfg.authorized(basic("bob:colon", "pass:with:colons"))


def test_long_passwords_are_truncated_like_go(tmp_path):
    long = "x" * 72
    cfg = load_web_config(write_config(tmp_path / "web.yml", f"basic_auth_users:\n  u: {hash_pw(long)}\n"))
    assert cfg.authorized(basic("u", long))
    assert cfg.authorized(basic("u", long + "ignored"))  # bcrypt only sees 72 bytes


def test_checks_are_cached_both_ways(users_config, monkeypatch):
    calls = []
    real = webconfig.bcrypt.checkpw

    def counting(password, hashed):
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(webconfig.bcrypt, "checkpw", counting)
    for _ in range(5):
        assert users_config.authorized(basic("alice", "wonderland"))
    assert len(calls) == 1
    for _ in range(3):
        assert not users_config.authorized(basic("alice", "wrong"))  # a repeated wrong password costs one bcrypt run
    assert len(calls) == 2
    for _ in range(3):
        assert not users_config.authorized(basic("nobody", "wonderland"))  # unknown users pay bcrypt once too
    assert len(calls) == 3
    assert users_config.authorized(basic("alice", "wonderland")) and len(calls) == 3


def test_a_flood_of_wrong_passwords_does_not_push_the_right_one_out_of_the_cache():
    cache = webconfig._AuthCache(size=2, failures=3)
    right = cache.digest(b"u", b"h", b"right")
    cache.add(right, True)
    wrong = [cache.digest(b"u", b"h", b"%d" % i) for i in range(10)]
    for d in wrong:
        cache.add(d, False)
    assert cache.lookup(right) is True
    assert cache.failures == 3 and cache.lookup(wrong[-1]) is False and cache.lookup(wrong[0]) is None


def test_the_bcrypt_gate_serves_the_newest_first_and_is_bounded_in_waiters_and_deadline():
    gate = webconfig._Gate(max_waiting=2)
    assert gate.acquire(time.monotonic() + 1)
    got = {}

    def wait(name):
        got[name] = gate.acquire(time.monotonic() + 10)
        if got[name]:
            got[name + " order"] = len([k for k in got if k.endswith(" order")])
            gate.release()

    threads = {}
    for n, name in enumerate(("oldest", "middle", "newest"), 1):
        threads[name] = threading.Thread(target=wait, args=(name,))
        threads[name].start()
        deadline = time.monotonic() + 10
        while gate.waiting < min(n, 2) and time.monotonic() < deadline:
            time.sleep(0.01)
        if name == "newest":  # the queue was full: the oldest was pushed out
            threads["oldest"].join(10)
            assert got["oldest"] is False
    gate.release()
    for t in threads.values():
        t.join(10)
    assert got["newest"] and got["middle"] and got["newest order"] < got["middle order"], got
    assert gate.acquire(time.monotonic()) and gate.waiting == 0
    late = []
    t = threading.Thread(target=lambda: late.append(gate.acquire(time.monotonic() + 0.2)))
    t.start()
    t.join(10)
    assert late == [False] and gate.waiting == 0, "a waiter past its deadline leaves the queue"
    gate.release()
    assert webconfig._Gate(max_waiting=0).acquire(time.monotonic() - 1), "a free gate is taken even late"


def test_a_request_that_cannot_get_a_bcrypt_check_in_time_gets_503(users_config, monkeypatch):
    monkeypatch.setattr(webconfig, "_bcrypt_gate", webconfig._Gate(max_waiting=0))
    assert webconfig._bcrypt_gate.acquire(time.monotonic())  # someone else's check runs
    try:
        with pytest.raises(webconfig.AuthBusy):
            users_config.authorized(basic("alice", "not-cached"))
    finally:
        webconfig._bcrypt_gate.release()
    assert not users_config.authorized(basic("alice", "not-cached"))


def test_unknown_users_pay_the_same_bcrypt_cost_as_known_ones(tmp_path, monkeypatch):
    """A fixed cost-10 dummy against cost-6 (or cost-12) users let timing tell which names exist."""
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=6)).decode()
    cfg = load_web_config(write_config(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {hashed}\n"))
    checked = []
    real = webconfig.bcrypt.checkpw
    monkeypatch.setattr(webconfig.bcrypt, "checkpw", lambda pw, h: checked.append(h) or real(pw, h))
    assert not cfg.authorized(basic("nobody", "pw"))
    assert not cfg.authorized(basic("alice", "wrong"))
    assert [h[:7] for h in checked] == [b"$2b$06$", b"$2b$06$"]
    assert checked[0] != checked[1]


def test_auth_cache_is_bounded_and_keyed_by_the_stored_hash():
    cache = webconfig._AuthCache(size=3)
    digests = [cache.digest(b"u", b"h", str(i).encode()) for i in range(5)]
    for d in digests:
        cache.add(d)
    assert len(cache) == 3
    assert digests[0] not in cache and digests[4] in cache
    assert cache.digest(b"u", b"h1", b"p") != cache.digest(b"u", b"h2", b"p")
    assert cache.digest(b"u:", b"h", b"p") != cache.digest(b"u", b":h", b"p")  # length-prefixed, no ambiguity


# --- TLS, auth and headers over the wire -----------------------------------------------------------


def tls_config(cfgdir: Path, extra_tls: str = "", users: dict[str, str] | None = None, headers: str = "") -> Path:
    text = f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra_tls}"
    if headers:
        text += f"http_server_config:\n  headers:\n{headers}"
    if users:
        text += "basic_auth_users:\n" + "".join(f"  {u}: {hash_pw(p)}\n" for u, p in users.items())
    return write_config(cfgdir / "web.yml", text)


@needs_curl
def test_tls_basic_auth_and_headers_with_curl(cfgdir):
    path = tls_config(cfgdir, users={"alice": "wonderland"}, headers="    X-Content-Type-Options: nosniff\n")
    with serving(WebConfigWatcher(path)) as port:
        url = f"https://127.0.0.1:{port}"
        ca = ["--cacert", str(cfgdir / "ca.crt")]

        rc, code, head = curl(url + "/metrics", *ca, "-u", "alice:wonderland")
        assert (rc, code) == (0, 200), head
        assert "x-content-type-options: nosniff" in head.lower()

        rc, code, head = curl(url + "/metrics", *ca, "-u", "alice:wrong")
        assert (rc, code) == (0, 401)
        assert 'www-authenticate: basic realm="otel-bare-metal"' in head.lower()
        assert "x-content-type-options: nosniff" in head.lower()  # headers go on every response

        assert curl(url + "/metrics", *ca)[:2] == (0, 401)
        assert curl(url + "/", *ca)[:2] == (0, 401)
        assert curl(url + "/healthz", *ca)[:2] == (0, 200)

        # The certificate is checked: without the CA curl refuses it.
        rc, code, _ = curl(url + "/healthz")
        assert rc != 0 and code == 0

        # Plain HTTP to the TLS port gets no HTTP response at all.
        rc, code, head = curl(f"http://127.0.0.1:{port}/healthz")
        assert rc != 0 and code == 0 and "HTTP/" not in head

        assert curl(url + "/healthz", *ca)[:2] == (0, 200)  # and the server is still fine


def test_tls_with_python_clients(cfgdir, pki):
    path = tls_config(cfgdir, users={"alice": "wonderland"})
    with serving(WebConfigWatcher(path)) as port:
        ctx = client_context(pki)
        status, _, body, _ = https_get(port, "/metrics", ctx, basic("alice", "wonderland"))
        assert (status, body) == (200, b"ok /metrics\n")
        assert https_get(port, "/metrics", ctx, basic("alice", "nope"))[0] == 401
        assert https_get(port, "/healthz", ctx)[0] == 200

        with pytest.raises((http.client.HTTPException, ConnectionError)):
            http_get(port, "/healthz")

        # Raw bytes: whatever comes back (a TLS alert or nothing) is not HTTP.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                reply = s.recv(100)
            except ConnectionError:
                reply = b""
        assert not reply.startswith(b"HTTP")

        assert https_get(port, "/healthz", ctx)[0] == 200


@needs_curl
def test_mtls_require_and_verify_client_cert(cfgdir, pki):
    path = tls_config(cfgdir, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n")
    with serving(WebConfigWatcher(path)) as port:
        assert https_get(port, "/metrics", client_context(pki, cert="client"))[0] == 200
        with pytest.raises(HANDSHAKE_FAILED):
            https_get(port, "/metrics", client_context(pki))
        with pytest.raises(HANDSHAKE_FAILED):
            https_get(port, "/metrics", client_context(pki, cert="stranger"))

        url = f"https://127.0.0.1:{port}/metrics"
        ca = ["--cacert", str(pki / "ca.crt")]
        assert curl(url, *ca, "--cert", str(pki / "client.crt"), "--key", str(pki / "client.key"))[:2] == (0, 200)
        rc, code, _ = curl(url, *ca)
        assert rc != 0 and code == 0
        rc, code, _ = curl(url, *ca, "--cert", str(pki / "stranger.crt"), "--key", str(pki / "stranger.key"))
        assert rc != 0 and code == 0


def test_verify_client_cert_if_given(cfgdir, pki):
    path = tls_config(cfgdir, "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n")
    with serving(WebConfigWatcher(path)) as port:
        assert https_get(port, "/metrics", client_context(pki))[0] == 200
        assert https_get(port, "/metrics", client_context(pki, cert="client"))[0] == 200
        with pytest.raises(HANDSHAKE_FAILED):
            https_get(port, "/metrics", client_context(pki, cert="stranger"))


def test_client_allowed_sans(cfgdir, pki):
    base = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
    watcher = WebConfigWatcher(tls_config(cfgdir, base + "  client_allowed_sans: [client.example]\n"))
    with serving(watcher) as port:
        assert https_get(port, "/metrics", client_context(pki, cert="client"))[0] == 200
        tls_config(cfgdir, base + "  client_allowed_sans: [someone.else, 10.0.0.1]\n")
        watcher.fresh(time.monotonic() + 10)  # the loader has taken the change in
        with pytest.raises(HANDSHAKE_FAILED):
            https_get(port, "/metrics", client_context(pki, cert="client"))


@needs_curl
def test_min_version_tls13_refuses_tls12_clients(cfgdir, pki):
    path = tls_config(cfgdir, "  min_version: TLS13\n")
    with serving(WebConfigWatcher(path)) as port:
        assert https_get(port, "/healthz", client_context(pki))[0] == 200
        with pytest.raises(ssl.SSLError):
            https_get(port, "/healthz", client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2))
        url = f"https://127.0.0.1:{port}/healthz"
        ca = ["--cacert", str(pki / "ca.crt")]
        rc, code, _ = curl(url, *ca, "--tls-max", "1.2")
        assert rc != 0 and code == 0
        assert curl(url, *ca, "--tlsv1.3")[:2] == (0, 200)


def test_max_version_tls12_refuses_tls13_only_clients(cfgdir, pki):
    path = tls_config(cfgdir, "  max_version: TLS12\n")
    with serving(WebConfigWatcher(path)) as port:
        with pytest.raises(ssl.SSLError):
            https_get(port, "/healthz", client_context(pki, minimum_version=ssl.TLSVersion.TLSv1_3))
        assert https_get(port, "/healthz", client_context(pki))[0] == 200


def test_plain_http_with_basic_auth_only(tmp_path):
    path = write_config(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {hash_pw('pw')}\n")
    with serving(WebConfigWatcher(path)) as port:
        assert http_get(port, "/metrics", basic("alice", "pw"))[0] == 200
        status, headers, _ = http_get(port, "/metrics")
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="otel-bare-metal"'
        assert http_get(port, "/healthz")[0] == 200


# --- reloading ------------------------------------------------------------------------------------


def test_changed_users_apply_on_the_next_request(cfgdir, pki, caplog):
    path = tls_config(cfgdir, users={"alice": "a"})
    watcher = WebConfigWatcher(path)
    with serving(watcher) as port:
        ctx = client_context(pki)
        assert https_get(port, "/metrics", ctx, basic("alice", "a"))[0] == 200
        assert https_get(port, "/metrics", ctx, basic("bob", "b"))[0] == 401

        tls_config(cfgdir, users={"bob": "b"})  # no SIGHUP: checked per request, as exporter-toolkit does
        assert https_get(port, "/metrics", ctx, basic("bob", "b"))[0] == 200
        assert https_get(port, "/metrics", ctx, basic("alice", "a"))[0] == 401  # removed users are out at once

        # A broken file keeps the last good config, with one error in the log however many requests come.
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger=webconfig.__name__):
            write_config(path, "basic_auth_users:\n  bob: not-a-hash\n")
            for _ in range(3):
                assert https_get(port, "/metrics", ctx, basic("bob", "b"))[0] == 200
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "not a bcrypt hash" in log_text(errors)
        assert "keeping the previous configuration" in errors[0].getMessage()
        assert watcher.reload_now() is False  # SIGHUP on a broken file: same

        tls_config(cfgdir, users={"carol": "c"})
        assert https_get(port, "/metrics", ctx, basic("carol", "c"))[0] == 200


def test_reload_on_demand(tmp_path):
    path = write_config(tmp_path / "web.yml", f"basic_auth_users:\n  a: {hash_pw('1')}\n")
    watcher = WebConfigWatcher(path)
    assert watcher.authorized(basic("a", "1"))
    path.write_text(f"basic_auth_users:\n  b: {hash_pw('2')}\n")
    assert watcher.reload_now() is True
    assert watcher.config.users.keys() == {"b"}
    assert watcher.authorized(basic("b", "2")) and not watcher.authorized(basic("a", "1"))


def eventually(check, within: float = 10.0):
    """The first truthy ``check()`` within ``within`` seconds (reloads happen on the loader thread), or
    the last falsy one."""
    end = time.monotonic() + within
    while not (result := check()) and time.monotonic() < end:
        time.sleep(0.05)
    return result


def test_renewed_certificate_applies_to_new_connections(cfgdir, pki):
    path = tls_config(cfgdir)
    watcher = WebConfigWatcher(path)
    with serving(watcher) as port:
        ctx = client_context(pki)
        first = https_get(port, "/healthz", ctx)[3]["serialNumber"]
        # cert-manager style: the config file does not change, the certificate and key do.
        shutil.copy(pki / "server2.key", cfgdir / "server.key")
        shutil.copy(pki / "server2.crt", cfgdir / "server.crt")
        for f in ("server.key", "server.crt"):
            st = (cfgdir / f).stat()
            os.utime(cfgdir / f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        # The connection that sees the change is served with the certificate in force; the loader thread
        # takes the new one in meanwhile, and the next connections get it.
        assert eventually(lambda: https_get(port, "/healthz", ctx)[3]["serialNumber"] != first)


def test_half_written_certificate_keeps_the_old_one(cfgdir, pki, caplog):
    path = tls_config(cfgdir)
    watcher = WebConfigWatcher(path)
    with serving(watcher) as port:
        ctx = client_context(pki)
        first = https_get(port, "/healthz", ctx)[3]["serialNumber"]
        with caplog.at_level(logging.ERROR, logger=webconfig.__name__):
            shutil.copy(pki / "server2.crt", cfgdir / "server.crt")  # key not yet replaced: mismatch
            assert https_get(port, "/healthz", ctx)[3]["serialNumber"] == first
            assert eventually(lambda: "does not match" in log_text(caplog.records))
            assert https_get(port, "/healthz", ctx)[3]["serialNumber"] == first
        shutil.copy(pki / "server2.key", cfgdir / "server.key")
        st = (cfgdir / "server.key").stat()
        os.utime(cfgdir / "server.key", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        assert eventually(lambda: https_get(port, "/healthz", ctx)[3]["serialNumber"] != first)


def test_a_file_emptied_at_reload_keeps_the_previous_config(tmp_path, caplog):
    path = write_config(tmp_path / "web.yml", f"basic_auth_users:\n  a: {hash_pw('1')}\n")
    watcher = WebConfigWatcher(path)
    for text in ("", "# only a comment, the rest not yet written\n"):
        write_config(path, text)
        with caplog.at_level(logging.ERROR, logger=webconfig.__name__):
            assert not watcher.authorized(None)  # still protected
        assert "the file is empty" in log_text(caplog.records)
    write_config(path, "{}\n")  # emptied on purpose
    assert watcher.authorized(None)


def test_a_reload_that_turns_auth_off_is_a_warning(tmp_path, caplog):
    path = write_config(tmp_path / "web.yml", f"basic_auth_users:\n  a: {hash_pw('1')}\n")
    watcher = WebConfigWatcher(path)
    write_config(path, "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")  # e.g. cut short
    with caplog.at_level(logging.INFO, logger=webconfig.__name__):
        assert watcher.reload_now() is True
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "WITHOUT basic auth" in warnings[0].getMessage()
    assert "atomically" in warnings[0].getMessage()
    assert watcher.authorized(None)
    caplog.clear()
    write_config(path, f"basic_auth_users:\n  a: {hash_pw('1')}\n")
    with caplog.at_level(logging.INFO, logger=webconfig.__name__):
        assert watcher.reload_now() is True
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_tls_cannot_be_switched_by_reload(cfgdir, caplog):
    path = tls_config(cfgdir)
    watcher = WebConfigWatcher(path)
    write_config(path, "{}\n")
    with caplog.at_level(logging.ERROR, logger=webconfig.__name__):
        assert watcher.reload_now() is False
    assert "cannot be switched by a reload" in log_text(caplog.records)
    assert watcher.tls_enabled


# --- the accept loop is never held up by a client ---------------------------------------------------


def test_silent_client_neither_blocks_others_nor_stays_forever(cfgdir, pki):
    path = tls_config(cfgdir)
    with (
        serving(WebConfigWatcher(path), handshake_timeout=0.5) as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as silent,
    ):
        start = time.monotonic()
        assert https_get(port, "/healthz", client_context(pki))[0] == 200  # handshakes are per thread
        assert time.monotonic() - start < 2
        silent.settimeout(5)
        try:
            assert silent.recv(1) == b""  # closed by the server after the handshake timeout
        except ConnectionError:
            pass
        assert time.monotonic() - start < 4
