"""Web config reloads (issue 21 rows 3, 3b, 4): any failure keeps the old config with one error line,
loading never runs on the server's threads, SIGHUP only sets a flag, a FIFO is never waited on, and the
broken file at start is one line. Loopback only; every wait is bounded."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

import pytest

from otel_bare_metal import limits
from otel_bare_metal.server import webconfig
from otel_bare_metal.server.http import Limits
from otel_bare_metal.server.webconfig import WebConfigError, WebConfigWatcher, load_web_config

from helpers import ROOT, fetch, free_port, log_text, stop_process, wait_for_http
from test_http import get, serving
from test_webconfig import basic, eventually, hash_pw, write_config

# A request that sees the file change waits for the loader up to its auth wait budget
# (limits.AUTH_WAIT_SECONDS), so a client here waits longer than that, not get()'s default 5 s.
CLIENT_WAIT = limits.AUTH_WAIT_SECONDS + 5

BROKEN = {
    "nul-in-cert-file": "tls_server_config:\n  cert_file: \"a\\0b.crt\"\n  key_file: k.key\n",
    "yaml-5000-deep": "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "not-utf8": "basic_auth_users:\n  \xff: x\n",
}


@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_any_broken_file_is_one_error_line_and_keeps_the_old_config(tmp_path, caplog, text):
    path = write_config(tmp_path / "web.yml", f"basic_auth_users:\n  a: {hash_pw('1')}\n")
    watcher = WebConfigWatcher(path)
    path.write_bytes(text.encode("latin-1"))
    with caplog.at_level(logging.ERROR, logger=webconfig.__name__):
        assert watcher.reload_now() is False
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage() and not errors[0].exc_info
    assert "keeping the previous configuration" in errors[0].getMessage()
    assert watcher.config.users.keys() == {"a"} and watcher.authorized(basic("a", "1"))


@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_any_broken_file_at_start_is_one_web_config_error(tmp_path, text):
    path = tmp_path / "web.yml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(WebConfigError) as e:
        load_web_config(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_place_of_the_file_is_refused_not_waited_on(tmp_path, caplog):
    path = write_config(tmp_path / "web.yml", "{}\n")
    watcher = WebConfigWatcher(path)
    os.unlink(path)
    os.mkfifo(path)  # nobody ever writes to it
    result = []
    loader = threading.Thread(target=lambda: result.append(watcher.reload_now()), daemon=True)
    with caplog.at_level(logging.ERROR, logger=webconfig.__name__):
        loader.start()
        loader.join(10)
    assert result == [False], "the load returned instead of waiting for a writer"
    assert "not a regular file" in log_text(caplog.records)
    with pytest.raises(WebConfigError, match="not a regular file"):
        load_web_config(path)


def test_a_slow_load_runs_on_its_own_thread_and_the_server_keeps_answering(tmp_path, monkeypatch):
    """Loading used to run on the selector thread: a reload adding a cost-15 bcrypt user stalled every
    connection for 1.6 s; a FIFO made the server deaf."""
    path = write_config(tmp_path / "web.yml", f"basic_auth_users:\n  a: {hash_pw('1')}\n")
    watcher = WebConfigWatcher(path)
    entered, release = threading.Event(), threading.Event()
    real = webconfig._load
    threads = []

    def slow_load(p, allow_empty):
        threads.append(threading.current_thread().name)
        entered.set()
        release.wait(20)
        return real(p, allow_empty)

    monkeypatch.setattr(webconfig, "_load", slow_load)
    hooks = dict(ssl_context=watcher.ssl_context, verify_peer=watcher.verify_peer, authorize=watcher.authorize,
                 response_headers=watcher.response_headers)  # fmt: skip
    try:
        with serving(**hooks) as server:
            assert get(server.port, headers={"Authorization": basic("a", "1")})[0] == 200
            write_config(path, f"basic_auth_users:\n  b: {hash_pw('2')}\n")
            # The front thread sees the change at the next accept and only kicks the loader.
            assert get(server.port, "/healthz")[0] == 200
            assert entered.wait(10)
            for _ in range(5):  # the load hangs: connections, /healthz and cached credentials still answer
                assert get(server.port, "/healthz", timeout=5)[0] == 200
            watcher.reload()  # SIGHUP meanwhile: returns at once
            release.set()
            assert eventually(lambda: get(server.port, headers={"Authorization": basic("b", "2")}, timeout=CLIENT_WAIT)[0] == 200)
            assert get(server.port, headers={"Authorization": basic("a", "1")})[0] == 401
    finally:
        release.set()
        watcher.close()
    assert threads and all(name == "web-config" for name in threads)


def test_reload_only_sets_a_flag(tmp_path, monkeypatch):
    path = write_config(tmp_path / "web.yml", "{}\n")
    watcher = WebConfigWatcher(path)
    loads = []
    real = webconfig._load
    monkeypatch.setattr(webconfig, "_load", lambda p, allow_empty: loads.append(threading.current_thread().name) or real(p, allow_empty))
    try:
        watcher.reload()
        assert loads == [] or loads == ["web-config"], "nothing loaded on the caller's thread"
        assert eventually(lambda: loads == ["web-config"])
    finally:
        watcher.close()


def test_sighup_with_a_broken_file_keeps_the_process_serving(tmp_path):
    """SIGHUP on a file with a NUL in cert_file (or 5 000-deep YAML) used to end the process with a traceback."""
    path = write_config(tmp_path / "web.yml", f"basic_auth_users:\n  a: {hash_pw('1')}\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={path}",
         "--no-collector.filesystem", "--no-collector.cpu"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()

    def kept() -> int:
        return sum("keeping the previous configuration" in line for line in list(lines))

    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        for n, text in enumerate(BROKEN.values(), 1):
            path.write_bytes(text.encode("latin-1"))
            proc.send_signal(signal.SIGHUP)
            assert eventually(lambda: kept() >= n), "one error line per broken file"
            assert proc.poll() is None
            status = fetch(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": basic("a", "1")}, timeout=10)[0]
            assert status == 200, "the old config is still in force"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        reader.join(10)
        assert not any("Traceback" in line for line in lines)
        assert kept() >= len(BROKEN)  # a change seen by the loader and the SIGHUP after it may make two attempts
    finally:
        stop_process(proc)


def test_a_broken_file_at_start_is_one_line_and_exit_1(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(BROKEN["nul-in-cert-file"])
    proc = subprocess.run(
        [sys.executable, "-m", "otel_bare_metal", f"--web.listen-address=127.0.0.1:{free_port()}",
         f"--web.config.file={path}", "--no-collector.filesystem", "--no-collector.cpu"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "web config" in lines[0] and "Traceback" not in proc.stderr


def test_a_broken_file_without_sighup_neither_resets_connections_nor_leaks_slots(tmp_path, caplog):
    """A NUL in cert_file, seen by the per-connection check, used to reset every connection and leak its
    slot: with --web.max-connections 20 everything was refused for good, even after the fix."""
    path = write_config(tmp_path / "web.yml", f"basic_auth_users:\n  a: {hash_pw('1')}\n")
    watcher = WebConfigWatcher(path)
    hooks = dict(ssl_context=watcher.ssl_context, verify_peer=watcher.verify_peer, authorize=watcher.authorize,
                 response_headers=watcher.response_headers)  # fmt: skip
    auth = {"Authorization": basic("a", "1")}
    try:
        with caplog.at_level(logging.ERROR, logger=webconfig.__name__):
            with serving(limits=Limits(max_connections=3), **hooks) as server:
                write_config(path, BROKEN["nul-in-cert-file"])
                for _ in range(10):
                    assert get(server.port, headers=auth, timeout=CLIENT_WAIT)[0] == 200
                assert eventually(lambda: server.open_connections == 0)
                write_config(path, f"basic_auth_users:\n  b: {hash_pw('2')}\n")  # fixed
                assert eventually(lambda: get(server.port, headers={"Authorization": basic("b", "2")}, timeout=CLIENT_WAIT)[0] == 200)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "keeping the previous configuration" in errors[0].getMessage()
    finally:
        watcher.close()
