"""HDHomeRun metrics end to end against the simulator: configured devices, /probe, allowlist."""

import time
from contextlib import ExitStack

import pytest

from helpers import fetch, free_port, log_text, promtool_check_metrics, samples
from otel_bare_metal.app import App
from otel_bare_metal.collectors.hdhomerun import HDHomeRunOptions
from otel_bare_metal.config import Config
from otel_bare_metal.collectors.hdhomerun.allowlist import Allowlist, TargetNotAllowed, parse_rule
from otel_bare_metal.hdhr.simulator import Faults, Simulator
from otel_bare_metal.hdhr.text import parse_tuner_debug
from otel_bare_metal.telemetry.resource import build_resource


def start_exporter(devices=(), timeout=1.0, allow=None, collectors=("cpu",)):
    config = Config(
        listen_address=f"127.0.0.1:{free_port()}",
        collectors={c: True for c in (*collectors, "hdhomerun")},
        options={"hdhomerun": HDHomeRunOptions(devices=tuple(devices), timeout=timeout,
                                               allow_targets=tuple(allow) if allow is not None else ())},
    )
    exporter = App(config, resource=build_resource({})).start()
    return exporter, f"http://{config.listen_address[0]}"


def series(s, name, **labels):
    return {k: v for k, v in s.items() if k[0] == name and all((lk, lv) in k[1] for lk, lv in labels.items())}


@pytest.fixture
def sim():
    with Simulator("127.0.0.1", 0, tuners=4, cablecard=True) as s:
        yield s


def test_values_end_to_end(sim):
    exporter, base = start_exporter([sim.address_text])
    try:
        body = fetch(base + "/metrics")[2].decode()
        debug = {n: parse_tuner_debug(sim.tuner_debug(n)) for n in range(4)}
    finally:
        exporter.close()
    s = samples(body)
    dev = sim.address_text
    assert series(s, "hdhomerun_up") == {("hdhomerun_up", (("hdhomerun_device", dev),)): 1.0}
    assert list(series(s, "hdhomerun_tuners").values()) == [4.0]
    [info] = series(s, "hdhomerun_device_info")
    assert dict(info[1])["hdhomerun_device_id"] == f"{sim.device_id:08X}"
    assert dict(info[1])["hdhomerun_model"]
    # signal: percent → ratio (the simulator's values drift slowly, so compare loosely)
    for n in (1, 2, 3):
        [ss] = series(s, "hdhomerun_tuner_signal_strength_ratio", hdhomerun_tuner=str(n)).values()
        assert 0.0 < ss <= 1.0 and abs(ss - debug[n].tun.signal_strength / 100) <= 0.05
        [rate] = series(s, "hdhomerun_tuner_transport_rate_bytes_per_second", hdhomerun_tuner=str(n)).values()
        assert abs(rate - debug[n].ts.bps / 8) <= 0.05 * debug[n].ts.bps / 8
    idle = series(s, "hdhomerun_tuner_info", hdhomerun_tuner="0")
    assert [dict(k[1])["hdhomerun_lock"] for k in idle] == ["none"]
    # counters are counters
    assert series(s, "hdhomerun_tuner_crc_errors_total") and series(s, "hdhomerun_tuner_network_errors_total")
    assert "# TYPE hdhomerun_tuner_transport_errors_total counter" in body
    assert "# TYPE hdhomerun_tuner_signal_strength_ratio gauge" in body
    # CableCARD once per device, not per tuner
    assert len(series(s, "hdhomerun_cablecard_rate_bytes_per_second")) == 1
    result = promtool_check_metrics(body)
    assert result.returncode == 0 and not result.stdout and not result.stderr, result


def test_one_request_per_tuner_per_scrape(sim):
    exporter, base = start_exporter([sim.address_text])
    try:
        fetch(base + "/metrics")  # first scrape learns model, version, tuner count
        before = sim.requests_served
        fetch(base + "/metrics")
        assert sim.requests_served - before == 4
    finally:
        exporter.close()


@pytest.mark.parametrize("fault", [dict(drop=True), dict(garbage=True), dict(bad_crc=True), dict(truncate=True), dict(drip=0.5)])
def test_dead_or_garbling_device_is_down_within_the_timeout(fault):
    with Simulator("127.0.0.1", 0, tuners=2) as bad, Simulator("127.0.0.1", 0, tuners=2) as good:
        bad.set_faults(Faults(**fault))
        exporter, base = start_exporter([bad.address_text, good.address_text], timeout=1.0)
        try:
            start = time.monotonic()
            s = samples(fetch(base + "/metrics")[2].decode())
            elapsed = time.monotonic() - start
        finally:
            exporter.close()
    assert elapsed < 1.0 + 0.8
    up = {dict(k[1])["hdhomerun_device"]: v for k, v in series(s, "hdhomerun_up").items()}
    assert up == {bad.address_text: 0.0, good.address_text: 1.0}
    assert series(s, "system_cpu_time_seconds_total"), "host metrics still export"


def test_many_devices_are_collected_concurrently():
    """40 devices whose replies each take 50 ms: about one device's time, not 40 times it."""
    with ExitStack() as stack:
        sims = [stack.enter_context(Simulator("127.0.0.1", 0, tuners=4, faults=Faults(latency=0.05))) for _ in range(40)]
        exporter, base = start_exporter([s.address_text for s in sims], timeout=2.5)
        stack.callback(exporter.close)
        fetch(base + "/metrics")  # learn the facts once
        start = time.monotonic()
        s = samples(fetch(base + "/metrics")[2].decode())
        elapsed = time.monotonic() - start
        assert sum(series(s, "hdhomerun_up").values()) == 40
        # sequentially this would be 40 devices × 4 tuners × 50 ms = 8 s
        assert elapsed < 2.0, elapsed


def test_probe_endpoint_and_metrics_target_alias(sim):
    exporter, base = start_exporter([], allow=["127.0.0.0/8:*"])
    try:
        for path in ("/probe", "/metrics"):
            status, headers, body = fetch(f"{base}{path}?target={sim.address_text}")
            assert status == 200
            s = samples(body.decode())
            assert series(s, "hdhomerun_up") == {("hdhomerun_up", (("hdhomerun_device", sim.address_text),)): 1.0}
            assert not series(s, "system_cpu_time_seconds_total"), "a probe returns only that device"
            assert "target_info" not in body.decode()
            assert promtool_check_metrics(body).returncode == 0
        assert len(exporter.collector_routes["/probe"].handler.targets) == 1, "one cached device per target, reused"
        assert fetch(base + "/probe")[0] == 400
        assert fetch(base + "/probe?target=")[0] == 400
        assert fetch(base + "/probe?target=[::1")[0] == 400
        status, _, body = fetch(base + "/probe?target=203.0.113.7")
        assert status == 403 and b"--hdhomerun.allow-target" in body
        status, _, body = fetch(base + "/probe?target=[::1]:80")
        assert status == 403, "only the networks named are allowed"
    finally:
        exporter.close()


def test_dead_probe_target_is_200_with_up_0():
    port = free_port()  # nothing listens there
    exporter, base = start_exporter([], timeout=0.5, allow=["127.0.0.0/8:*"])
    try:
        start = time.monotonic()
        status, _, body = fetch(f"{base}/probe?target=127.0.0.1:{port}")
        assert time.monotonic() - start < 0.5 + 0.8
    finally:
        exporter.close()
    assert status == 200
    assert samples(body.decode())[("hdhomerun_up", (("hdhomerun_device", f"127.0.0.1:{port}"),))] == 0.0


def test_probe_cache_is_bounded():
    from otel_bare_metal.collectors.hdhomerun.probe import ProbeTargets
    from otel_bare_metal.exposition.prometheus import PrometheusPage

    targets = ProbeTargets(timeout=0.2, resource=build_resource({}), page=PrometheusPage, max_targets=3)
    try:
        first = targets.get("127.0.0.1:1").device
        closed = []
        first.close = lambda: closed.append(first)
        for port in range(2, 6):
            targets.get(f"127.0.0.1:{port}")
        assert len(targets) == 3
        assert closed == [first], "the least recently probed target's device was closed when evicted"
        assert targets.get("127.0.0.1:1").device is not first
        assert targets.get("127.0.0.1:5").device is targets.get("127.0.0.1:5").device, "a cached target is reused"
    finally:
        targets.close()


# ----------------------------------------------------------------------------- allowlist

@pytest.mark.parametrize(
    "rule,target,allowed",
    [
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "10.1.2.3:65001", True),
        ("10.0.0.0/8", "10.1.2.3:8080", False),
        ("10.0.0.0/8:*", "10.1.2.3:8080", True),
        ("10.0.0.0/8:5000", "10.1.2.3:5000", True),
        ("192.168.1.8", "192.168.1.8", True),
        ("192.168.1.8", "192.168.1.9", False),
        ("[fd00::]/8:*", "[fd12::1]:9", True),
        ("[fd00::/8]:*", "[fd12::1]:9", True),
        ("[::1]", "::1", True),
        ("[::1]", "[::1]:1", False),
    ],
)
def test_allow_rules(rule, target, allowed):
    allowlist = Allowlist([rule], resolver=lambda host, port: [])
    if allowed:
        allowlist.check(target)
    else:
        with pytest.raises(TargetNotAllowed):
            allowlist.check(target)


def test_default_allows_loopback_and_private_on_65001_only():
    allowlist = Allowlist()
    for target in ("127.0.0.1", "10.0.0.5", "172.20.1.1", "192.168.1.8:65001", "[fd00::5]"):
        allowlist.check(target)
    for target in ("8.8.8.8", "172.32.0.1", "192.168.1.8:22", "127.0.0.1:80", "[2001:db8::1]"):
        with pytest.raises(TargetNotAllowed):
            allowlist.check(target)


def test_host_names_must_resolve_only_to_allowed_addresses():
    allowlist = Allowlist(resolver=lambda host, port: {"tuner.lan": ["192.168.1.8"], "evil.example": ["192.168.1.8", "8.8.8.8"]}[host])
    allowlist.check("tuner.lan")
    with pytest.raises(TargetNotAllowed):
        allowlist.check("evil.example")


def test_configured_devices_are_always_allowed():
    Allowlist([], configured=["203.0.113.7:65001"]).check("203.0.113.7")


@pytest.mark.parametrize("bad", ["[fd00::", "fd00::/8", "10.0.0.0/8:x", "10.0.0.0/33", "300.1.1.1"])
def test_bad_rules_are_errors(bad):
    with pytest.raises(ValueError, match="allow-target"):
        parse_rule(bad)


def test_cli_rejects_bad_device_and_rule():
    from otel_bare_metal.cli import main

    assert main(["--hdhomerun.device=[::1", "--no-collector.cpu"], {}) == 2
    assert main(["--hdhomerun.allow-target=nonsense/99"], {}) == 2


def test_down_reason_is_logged_once_per_minute(caplog):
    import logging

    from otel_bare_metal.collectors.hdhomerun.fleet import Device

    port = free_port()  # nothing listens: connection refused
    device = Device(f"127.0.0.1:{port}", timeout=0.5, discover=lambda a, w: None)
    with caplog.at_level(logging.WARNING, logger="otel_bare_metal.collectors.hdhomerun.fleet"):
        readings = [device.read() for _ in range(5)]
    device.close()
    assert all(not r.up and "refused" in r.error for r in readings)
    lines = [r for r in caplog.records if "is down" in r.getMessage()]
    assert len(lines) == 1 and "refused" in log_text(lines)
