"""The real ``otel-bare-metal`` process against slow and many clients, SIGTERM during a scrape, the
open files limit and a repeated ``--web.listen-address``. Loopback only; every loop is bounded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack

import pytest

from helpers import ROOT, fetch, free_port, running_exporter, stop_process, wait_for_http

resource = pytest.importorskip("resource")  # Unix only, like the limits this file checks


def _start(*args: str, env: dict | None = None, preexec=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "otel_bare_metal", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=preexec,
    )  # fmt: skip


def test_every_repeated_listen_address_is_served():
    p1, p2, p3 = free_port(), free_port(), free_port()
    proc = _start(f"--web.listen-address=127.0.0.1:{p1}", f"--web.listen-address=127.0.0.1:{p2}", "--no-collector.filesystem")
    try:
        for port in (p1, p2):
            wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
            assert fetch(f"http://127.0.0.1:{port}/metrics")[0] == 200
    finally:
        stop_process(proc)
    # The environment takes a comma-separated list, like the other repeatable flags.
    proc = _start("--no-collector.filesystem", env={"OTEL_BARE_METAL_WEB_LISTEN_ADDRESS": f"127.0.0.1:{p2},127.0.0.1:{p3}"})
    try:
        for port in (p2, p3):
            wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
    finally:
        stop_process(proc)


def test_a_taken_listen_address_is_one_line_naming_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{free_port()}",
             f"--web.listen-address=127.0.0.1:{port}"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert 'msg="cannot listen"' in result.stderr and f"127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_403_body_names_the_flag_not_the_rules():
    with running_exporter("--no-collector.filesystem", "--no-collector.cpu") as base:
        status, headers, body = fetch(f"{base}/probe?target=192.0.2.7")
    assert status == 403
    assert b"--hdhomerun.allow-target" in body
    assert b"10.0.0.0/8" not in body and b"127.0.0.0/8" not in body
    assert headers["server"] == "otel-bare-metal", "no Python version in the Server header"


def test_sigterm_lets_the_scrape_in_flight_finish_then_exits_0():
    """A device that accepts and never answers makes a scrape last --hdhomerun.timeout (2 s)."""
    with socket.socket() as device:
        device.bind(("127.0.0.1", 0))
        device.listen()
        port = free_port()
        proc = _start(f"--web.listen-address=127.0.0.1:{port}", f"--hdhomerun.device=127.0.0.1:{device.getsockname()[1]}",
                      "--hdhomerun.timeout=2", "--no-collector.filesystem")  # fmt: skip
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
            result = []
            scrape = threading.Thread(target=lambda: result.append(fetch(f"http://127.0.0.1:{port}/metrics", timeout=20)))
            start = time.monotonic()
            scrape.start()
            time.sleep(0.5)  # the scrape is now waiting on the device
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            scrape.join(20)
            assert result, "the scrape got an answer"
            status, _, body = result[0]
            assert status == 200 and b"hdhomerun" in body and body.endswith(b"\n")
            assert time.monotonic() - start < 10
        finally:
            stop_process(proc)


def _low_soft_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))


def test_the_soft_open_files_limit_is_raised_and_slow_clients_do_not_lock_others_out():
    """Started with a soft limit of 128 descriptors, 300 slow connections used to exhaust it (and spin the
    accept loop). The exporter raises the soft limit to the hard one, and a slow connection costs no thread."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.fail(f"the hard open files limit ({hard}) is too low for this test")
    port = free_port()
    proc = _start(f"--web.listen-address=127.0.0.1:{port}", "--no-collector.filesystem", preexec=_low_soft_limit)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        limits = open(f"/proc/{proc.pid}/limits").read()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        soft, hard_seen = line.split()[3:5]
        assert soft == hard_seen, line
        with ExitStack() as stack:
            slow = [stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10)) for _ in range(300)]
            for s in slow:
                s.sendall(b"GET /metrics HTTP/1.1\r\nX: ")
            threads = len(os.listdir(f"/proc/{proc.pid}/task"))
            assert threads < 50, f"{threads} threads for 300 slow connections"
            for _ in range(3):
                status, _, _ = fetch(f"http://127.0.0.1:{port}/metrics", timeout=10)
                assert status == 200
                for s in slow:
                    s.sendall(b"y")
    finally:
        stop_process(proc)


@pytest.mark.parametrize("flag", ["--web.max-requests=-1", "--web.max-connections=many"])
def test_bad_limit_flags_are_usage_errors(flag, capsys):
    from otel_bare_metal.cli import main

    assert main([flag], environ={}) == 2
    err = capsys.readouterr().err
    assert flag.split("=")[0] in err and len(err.strip().splitlines()) == 1


def test_limit_flags_reach_the_config():
    from otel_bare_metal.config import load
    from otel_bare_metal.registry import registry

    environ = {"OTEL_BARE_METAL_WEB_MAX_REQUESTS": "0"}
    config = load(["--web.max-connections=7", "--web.listen-address=127.0.0.1:1"], environ, registry())
    assert (config.max_connections, config.max_requests, config.listen_address) == (7, 0, ("127.0.0.1:1",))


def test_a_big_request_head_gets_431_and_gzip_q0_is_honoured():
    """The old server read up to 100 header lines of 64 KB each before refusing anything."""
    with running_exporter("--no-collector.filesystem") as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 8000) for i in range(40))
            try:
                s.sendall(head + b"\r\n")
            except OSError:
                pass  # closed while we were sending: read the 431 that was sent before
            try:
                reply = s.recv(4096)
            except ConnectionResetError:  # the unread rest of the head can turn the close into a reset
                reply = b"reset"
        assert reply.startswith(b"HTTP/1.1 431 ") or reply == b"reset", reply[:80]
        status, headers, _ = fetch(f"{base}/metrics", headers={"Accept-Encoding": "gzip;q=0"})
        assert status == 200 and "content-encoding" not in headers
        status, headers, _ = fetch(f"{base}/metrics", headers={"Accept-Encoding": "gzip"})
        assert headers.get("content-encoding") == "gzip"


def test_idle_connections_holding_every_slot_do_not_keep_scrapes_out():
    """Issue 21 row 7: with --web.max-connections 20, 30 connections that never send a byte used to
    refuse every scrape; the connections idle longest now make room."""
    port = free_port()
    proc = _start(f"--web.listen-address=127.0.0.1:{port}", "--web.max-connections=20", "--no-collector.filesystem")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        with ExitStack() as stack:
            for _ in range(30):
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            time.sleep(0.5)  # all accepted by now
            statuses = [fetch(f"http://127.0.0.1:{port}/metrics", timeout=10)[0] for _ in range(10)]
        assert statuses == [200] * 10
    finally:
        stop_process(proc)
