"""/probe cannot starve /metrics: probes have their own slots (--hdhomerun.max-probes), a probe's name
lookup gives up at the probe's deadline, and SIGTERM with probes of a dead device in flight
exits within the 5 s grace.  Loopback only: the targets that never answer are listening
sockets that accept and stay silent."""

import importlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager

from helpers import exporter_command, fetch, free_port, samples, wait_for_http
from otel_bare_metal.app import App
from otel_bare_metal.collectors.hdhomerun import HDHomeRunOptions
from otel_bare_metal.config import Config
from otel_bare_metal.hdhr.simulator import Faults, Simulator
from otel_bare_metal.telemetry.resource import build_resource


class Silent:
    """``n`` listening sockets that accept connections and never answer (allowed targets that
    never answer, as a LAN typo makes them); ``accepted`` counts the connections."""

    def __init__(self, n):
        self.servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
        self.accepted = 0
        self.held = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, args=(s,), daemon=True) for s in self.servers]
        for s in self.servers:
            s.settimeout(0.1)
        for t in self._threads:
            t.start()

    def targets(self):
        return [f"127.0.0.1:{s.getsockname()[1]}" for s in self.servers]

    def _accept(self, server):
        while not self._stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            self.held.append(conn)
            self.accepted += 1

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for c in self.held + self.servers:
            c.close()


def up(body):
    return {dict(labels).get("hdhomerun_device"): v for (name, labels), v in samples(body.decode()).items() if name == "hdhomerun_up"}


def wait_until(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@contextmanager
def probes_in_flight(n, path, scrape_timeout, **hdhomerun):
    """An exporter with ``n`` --web.max-requests slots and ``n`` probes on ``path`` (``/probe`` or
    ``/metrics``) in flight, each waiting on its own target that accepts and never answers;
    yields the exporter, its base URL and one of those silent targets. The probes end at their
    scrape timeout."""
    silent = Silent(n)
    exporter = App(Config(listen_address="127.0.0.1:0", collectors={}, max_requests=n, options={
        "hdhomerun": HDHomeRunOptions(timeout=30.0, allow_targets=("127.0.0.0/8:*",), **hdhomerun)}),
                   resource=build_resource({}), collectors=[]).start()
    base = f"http://127.0.0.1:{exporter.server.port}"
    probes = [threading.Thread(target=fetch, args=(f"{base}{path}?target={t}",),
                               kwargs={"headers": {"X-Prometheus-Scrape-Timeout-Seconds": str(scrape_timeout)}, "timeout": 20},
                               daemon=True)
              for t in silent.targets()]
    try:
        for t in probes:
            t.start()
        assert wait_until(lambda: silent.accepted == n)  # every probe is in flight, waiting on its target
        yield exporter, base, silent.targets()[0]
    finally:
        for t in probes:
            t.join(20)
        exporter.close()
        silent.close()


def test_probes_that_never_end_leave_metrics_its_slots():
    with probes_in_flight(40, "/probe", scrape_timeout=8) as (exporter, base, target):
        # Before: the 40 probes held all 40 --web.max-requests slots and /metrics got 503.
        assert [fetch(f"{base}/metrics")[0] for _ in range(5)] == [200] * 5
        status, _, body = fetch(f"{base}/probe?target={target}")
        assert status == 503 and b"concurrent probes" in body  # the probe budget, refused at once


def test_metrics_target_probes_count_against_the_probe_budget_not_metrics():
    """hdhomerun_exporter's spelling, /metrics?target=, is a probe: it takes a probe slot, shared
    with /probe, and none of the --web.max-requests slots a scrape of /metrics needs."""
    with probes_in_flight(2, "/metrics", scrape_timeout=4, max_probes=2) as (exporter, base, target):
        assert exporter.server.route_limits["/probe"].in_use == 2
        assert [fetch(f"{base}/metrics")[0] for _ in range(3)] == [200] * 3
        for path in ("/probe", "/metrics"):
            status, _, body = fetch(f"{base}{path}?target={target}")
            assert status == 503 and b"Limit of concurrent probes reached (2)" in body, path


def test_a_name_that_never_resolves_gives_up_at_the_probe_deadline():
    release = threading.Event()
    lookups = []

    def hanging_resolver(host, port):  # getaddrinfo stuck on a DNS server that never answers
        lookups.append(host)
        release.wait(60)
        return ["127.0.0.1"]

    exporter = App(Config(listen_address="127.0.0.1:0", collectors={},
                          options={"hdhomerun": HDHomeRunOptions(allow_targets=("127.0.0.0/8:*",))}),
                   resource=build_resource({}), collectors=[]).start()
    try:
        from otel_bare_metal.collectors.hdhomerun.allowlist import Allowlist

        exporter.collector_routes["/probe"].handler.allowlist = Allowlist(["127.0.0.0/8:*"], resolver=hanging_resolver)
        base = f"http://127.0.0.1:{exporter.server.port}"
        # The HTTP client gives up after 10 s: before, the probe waited on the lookup for good.
        status, _, body = fetch(f"{base}/probe?target=slow.test", headers={"X-Prometheus-Scrape-Timeout-Seconds": "1"},
                                timeout=10)
        assert status == 503 and b"did not resolve in time" in body
        assert lookups == ["slow.test"]
        assert fetch(f"{base}/metrics")[0] == 200
    finally:
        release.set()
        exporter.close()


def test_a_configured_name_that_never_resolves_gives_up_at_the_probe_deadline(monkeypatch):
    """A configured device keeps its name (its /metrics label) and is dialled by it: that
    lookup, too, ends at the probe's deadline (the device is then reported down)."""
    allowlist = importlib.import_module("otel_bare_metal.collectors.hdhomerun.allowlist")
    release = threading.Event()

    def hanging_resolver(host, port):
        release.wait(60)
        return ["127.0.0.1"]

    monkeypatch.setattr(allowlist, "resolve", hanging_resolver)
    exporter = App(Config(listen_address="127.0.0.1:0", collectors={},
                          options={"hdhomerun": HDHomeRunOptions(devices=("tuner.test",))}),
                   resource=build_resource({}), collectors=[]).start()
    try:
        url = f"http://127.0.0.1:{exporter.server.port}/probe?target=TUNER.test:65001"
        # The HTTP client gives up after 10 s: before, the probe waited on the lookup for good.
        status, _, body = fetch(url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=10)
        assert status == 200 and up(body) == {"tuner.test:65001": 0.0}
    finally:
        release.set()
        exporter.close()


def test_close_with_probes_of_a_dead_device_in_flight_ends_within_the_grace(caplog):
    """The shutdown grace (5 s) outlasts probes of a dead device: they share one read (before:
    one read after another, 2.5, 5.0 and 7.5 s, and the third outlived the grace)."""
    with Simulator("127.0.0.1", 0, tuners=1, faults=Faults(drop=True)) as dead:
        app = App(Config(listen_address="127.0.0.1:0", collectors={},
                         options={"hdhomerun": HDHomeRunOptions(allow_targets=("127.0.0.0/8:*",))}),
                  resource=build_resource({}), collectors=[]).start()
        url = f"http://127.0.0.1:{app.server.port}/probe?target={dead.address_text}"
        answers = []
        probes = [threading.Thread(target=lambda: answers.append(fetch(url, timeout=20))) for _ in range(3)]
        for t in probes:
            t.start()
        assert wait_until(lambda: app.server.route_limits["/probe"].in_use == 3, timeout=10)
        with caplog.at_level(logging.WARNING):
            app.close(grace=5.0)
        for t in probes:
            t.join(20)
        assert not [r for r in caplog.records if "still running at shutdown" in r.getMessage()]
        assert sorted(status for status, _, _ in answers) == [200, 200, 200]


def _threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def test_sigterm_with_probes_of_a_dead_device_in_flight_exits_within_the_grace():
    with Simulator("127.0.0.1", 0, tuners=1, faults=Faults(drop=True)) as dead:
        port = free_port()
        proc = subprocess.Popen([*exporter_command(), f"--web.listen-address=127.0.0.1:{port}", "--no-collector.cpu",
                                 "--no-collector.filesystem", "--hdhomerun.allow-target=127.0.0.0/8:*"],
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base + "/healthz", proc=proc)
            time.sleep(0.5)  # the /healthz request's thread ends
            idle = _threads(proc.pid)
            answers = []
            probes = [threading.Thread(target=lambda: answers.append(fetch(f"{base}/probe?target={dead.address_text}", timeout=20)))
                      for _ in range(3)]
            for t in probes:
                t.start()
            # All three are being served (a thread each) and the device is being read.
            assert wait_until(lambda: dead.requests_served > 0 and _threads(proc.pid) >= idle + 3, timeout=10)
            proc.send_signal(signal.SIGTERM)
            for t in probes:
                t.join(20)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack
                _, err = proc.communicate(timeout=30)
                raise AssertionError("no exit 30 s after SIGTERM: " + err)
            # All three shared one read, which ended inside the 5 s grace (before: 2.5, 5.0 and
            # 7.5 s one after another, and the third outlived the grace).
            assert proc.returncode == 0, err
            assert "still running at shutdown" not in err, err
            assert sorted(status for status, _, _ in answers) == [200, 200, 200]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
