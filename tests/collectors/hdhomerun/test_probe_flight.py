"""Probes of one device share one read (single flight), never wait past their own deadline,
and log against a budget of their own.  Everything on loopback, against the simulator."""

import logging
import socket
import threading

from helpers import fetch, log_text, samples
from otel_bare_metal.app import App
from otel_bare_metal.collectors.hdhomerun import HDHomeRunOptions
from otel_bare_metal.config import Config
from otel_bare_metal.hdhr.simulator import Faults, Simulator
from otel_bare_metal.collectors.hdhomerun.fleet import Fleet
from otel_bare_metal.telemetry.resource import build_resource


def up(body):
    return {dict(labels).get("hdhomerun_device"): v for (name, labels), v in samples(body.decode()).items() if name == "hdhomerun_up"}


def exporter(**options):
    options.setdefault("allow_targets", ("127.0.0.0/8:*",))
    return App(Config(listen_address="127.0.0.1:0", collectors={}, options={"hdhomerun": HDHomeRunOptions(**options)}),
               resource=build_resource({}), collectors=[]).start()


def concurrently(n, call):
    results = [None] * n
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, call())) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_a_burst_of_probes_of_one_healthy_device_shares_its_reads():
    """14 probes of a device that answers each request in 200 ms: each joins the read in flight
    (before: they queued on the device's lock and the last ones reported it down)."""
    with Simulator("127.0.0.1", 0, tuners=2, faults=Faults(latency=0.2)) as sim:
        ex = exporter(timeout=5.0)
        try:
            url = f"http://127.0.0.1:{ex.server.port}/probe?target={sim.address_text}"
            assert up(fetch(url, timeout=20)[2]) == {sim.address_text: 1.0}  # learn the facts first
            served = sim.requests_served
            results = concurrently(14, lambda: fetch(url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"}, timeout=20))
            assert [(status, up(body)) for status, _, body in results] == [(200, {sim.address_text: 1.0})] * 14
            # A read is one request per tuner; 14 probes made at most a few reads, not 14.
            assert sim.requests_served - served <= 2 * 3
        finally:
            ex.close()


def test_probes_of_a_dead_device_join_one_read():
    """Three probes of a device that never answers: one read, which all three share (before:
    three reads one after another, 2.5, 5.0 and 7.5 s)."""
    with Simulator("127.0.0.1", 0, tuners=1, faults=Faults(drop=True)) as sim:
        ex = exporter(timeout=2.0)
        try:
            url = f"http://127.0.0.1:{ex.server.port}/probe?target={sim.address_text}"
            results = concurrently(3, lambda: fetch(url, timeout=20))
            assert [(status, up(body)) for status, _, body in results] == [(200, {sim.address_text: 0.0})] * 3
            device = ex.collector_routes["/probe"].handler.targets.get(sim.address_text).device
            assert device.requests == 1  # one request (the model) of one read; the others joined it
        finally:
            ex.close()


def test_probes_of_dead_targets_cannot_silence_a_configured_device(caplog):
    """150 probes of dead targets, then a configured device goes down: its line is written
    (before: the probes had used up the one shared budget of 100 lines a minute)."""
    ports = []
    for _ in range(150):  # ports where nothing listens: each probe fails at once (connection refused)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    ex = exporter(timeout=1.0)
    try:
        with caplog.at_level(logging.WARNING):
            for port in ports:
                status, _, _ = fetch(f"http://127.0.0.1:{ex.server.port}/probe?target=127.0.0.1:{port}")
                assert status == 200
            with Simulator("127.0.0.1", 0, tuners=1, faults=Faults(drop=True)) as dead:
                fleet = Fleet([dead.address_text], timeout=0.5, retry_first=60)
                try:
                    assert not fleet.read().devices[0].up
                finally:
                    fleet.close()
        down = [log_text([r]) for r in caplog.records if "is down" in r.getMessage()]
        assert any(dead.address_text in line for line in down), down[-3:]
    finally:
        ex.close()
