"""Our simulator and our classic /probe against github.com/mdlayher/hdhomerun, run for real.

That library is what mdlayher/hdhomerun_exporter is built on, at the version the exporter's
go.mod pins.  The exporter module itself is refused by the Go module proxy (403), the library is
served; ``tools/hdhomerun-peer`` (ours, built by scripts/go-peers) reads a device with it the way
the exporter does (Model, ForEachTuner, Tuner.Debug) plus raw Query() values, and prints JSON.

What is proven here:

* the library parses every ``/tunerN/debug`` field our simulator serves to the values our own
  client and parser read (and the fields it does not parse are named, not forgotten);
* the library's tuner count (ForEachTuner, ended by "unknown getset variable" = IsNotExist),
  model and raw values (NUL-terminated, long values with a two-byte length) agree with ours;
* our classic-mode ``/probe`` serves exactly the series hdhomerun_exporter's collector derives
  from the library's figures (names, labels, values), and exactly the series of the peer's own
  ``/metrics?target=`` page (the exporter's per-probe work on a client_golang registry, which
  bench/probe_vs_go.py measures against our /probe);
* a corrupted, cut or missing reply gives no figures from either.

The hand-modelled comparison of names and label sets is in tests/telemetry/test_classic_naming.py.
No broadcast: the peer refuses anything but a literal loopback host:port, and never discovers.
"""

from __future__ import annotations

import json
import subprocess
from contextlib import contextmanager

import pytest

from collector_support import go_peer
from helpers import fetch, running_exporter, samples, stop_process
from otel_bare_metal.hdhr.client import Client, DeviceError
from otel_bare_metal.hdhr.packet import HDHomeRunError
from otel_bare_metal.hdhr.simulator import Simulator
from otel_bare_metal.hdhr.text import TunerDebug, parse_tuner_debug

pytestmark = pytest.mark.peers  # main interpreter only (scripts/test)

QUERIES = ("/sys/hwmodel", "/sys/version", "/sys/features", "/sys/debug", "/tuner0/status",
           "/tuner0/streaminfo", "/tuner0/channelmap", "/sys/long")
LONG = "0123456789abcdef" * 20  # 320 bytes: a TLV length of two bytes

# Each case: Simulator keyword arguments.  Tuner 0 is idle (ch=none lock=none), the others locked;
# "ntsc" swaps tuner 1's debug for a tuner that sees a signal it cannot decode (lock=(ntsc)).
CASES = {
    "atsc-4": dict(tuners=4),
    "cablecard-3": dict(tuners=3, cablecard=True),
    "one-idle": dict(tuners=1),
    "ntsc": dict(tuners=3, variables={"/tuner1/debug": (
        "tun: ch=auto:7 lock=(ntsc) ss=61 snq=0 seq=0 dbg=-900/-40\n"
        "dev: bps=0 resync=2 overflow=1\n"
        "ts:  bps=0 te=0 crc=0\n"
        "net: pps=0 err=0 stop=0\n")}),
}

# Fields our simulator serves that the library does not parse (hdhomerun_exporter never sees
# them); everything else must be compared below.
NOT_IN_LIBRARY = {("net", "bps")}
LIBRARY_FIELDS = {
    "tun": {"ch", "lock", "ss", "snq", "seq", "dbg"},
    "dev": {"bps", "resync", "overflow"},
    "cc": {"bps", "resync", "overflow"},
    "ts": {"bps", "te", "crc"},
    "net": {"pps", "err", "stop"},
}


def frozen_clock(elapsed: float):
    """The simulator's clock: 0 at its start, then ``elapsed`` for ever, so every reader (the Go
    peer, our client, the exporter) sees the same figures; 5000 s makes the counters non-zero."""
    calls = iter([0.0])
    return lambda: next(calls, elapsed)


def simulator(case: str) -> Simulator:
    kwargs = dict(CASES[case])
    kwargs["variables"] = {"/sys/long": LONG, **kwargs.get("variables", {})}
    return Simulator("127.0.0.1", 0, clock=frozen_clock(5000.0), **kwargs)


def run_peer(address: str, *queries: str, timeout: str = "5s") -> dict:
    done = subprocess.run([go_peer("hdhomerun-peer"), f"-timeout={timeout}", address, *queries],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@contextmanager
def metrics_peer(timeout: str = "5s"):
    """The peer in -listen mode on a loopback port it picks; yields its base URL."""
    proc = subprocess.Popen([go_peer("hdhomerun-peer"), f"-timeout={timeout}", "-listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        address = proc.stdout.readline().strip()
        assert address, proc.stderr.read() if proc.poll() is not None else "no address printed"
        yield f"http://{address}"
    finally:
        stop_process(proc)
        proc.stdout.close()
        proc.stderr.close()


def probed_tuner_count(address: str) -> int:
    """Our tuner-count probe (the device's, without a discover reply to take it from)."""
    from otel_bare_metal.collectors.hdhomerun.fleet import Device

    device = Device(address, 5.0, discover=lambda address, window: None)
    try:
        return device.read().info.tuner_count
    finally:
        device.close()


def as_library_reads(d: TunerDebug) -> dict:
    """Our parsed debug in the library's shape: what hdhomerun.TunerDebug should hold."""
    def section(s, **fields):
        return None if s is None else {k: getattr(s, v) for k, v in fields.items()}

    tun = section(d.tun, Channel="channel", Lock="lock", SignalStrength="signal_strength",
                  SignalToNoiseQuality="snr_quality", SymbolErrorQuality="symbol_quality", Debug="dbg")
    if tun is not None:  # the library keeps "none" as sent; ours reads it as None
        tun["Channel"] = tun["Channel"] or "none"
        tun["Lock"] = tun["Lock"] or "none"
    counters = dict(BitsPerSecond="bps", Resync="resync", Overflow="overflow")
    return {
        "Tuner": tun,
        "Device": section(d.dev, **counters),
        "CableCARD": section(d.cc, **counters),
        "TransportStream": section(d.ts, BitsPerSecond="bps", TransportErrors="te", CRCErrors="crc"),
        "Network": section(d.net, PacketsPerSecond="pps", Errors="err", Stop="stop"),
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_library_reads_every_debug_field_as_our_client_does(case):
    with simulator(case) as sim, Client(sim.address_text, timeout=5) as ours:
        theirs = run_peer(sim.address_text, *QUERIES, "/sys/nonexistent", "/tuner99/debug")
        assert theirs.get("model_error") is None and theirs.get("tuner_error") is None, theirs
        assert theirs["model"] == ours.model()
        # ForEachTuner ends where the device answers IsNotExist; our probe ends at the same tuner
        assert [t["index"] for t in theirs["tuners"]] == list(range(sim.tuners))
        assert probed_tuner_count(sim.address_text) == sim.tuners
        for t in theirs["tuners"]:
            text = ours.get(f"/tuner{t['index']}/debug")
            assert t["debug"] == as_library_reads(parse_tuner_debug(text)), (t["index"], text)
            for line in text.splitlines():  # every field served is compared or known to be ignored
                prefix, _, rest = line.partition(":")
                for key in (kv.split("=")[0] for kv in rest.split()):
                    assert key in LIBRARY_FIELDS[prefix] or (prefix, key) in NOT_IN_LIBRARY, (prefix, key)
        for name in QUERIES:  # raw values: the library hands back the NUL terminator, we strip it
            assert theirs["queries"][name] == {"value": ours.get(name) + "\x00", "not_exist": False}, name
        assert theirs["queries"]["/sys/long"]["value"] == LONG + "\x00"
        for name in ("/sys/nonexistent", "/tuner99/debug"):
            q = theirs["queries"][name]
            assert q["not_exist"] is True and q["value"] is None, q
            with pytest.raises(DeviceError) as e:
                ours.get(name)
            assert e.value.is_unknown_variable() and q["error"] == e.value.message
    if sim.cablecard:
        assert all(t["debug"]["CableCARD"]["Resync"] > 0 for t in theirs["tuners"]), "a non-zero CableCARD counter"
    if case != "one-idle":
        locked = [t for t in theirs["tuners"] if t["debug"]["Tuner"]["Lock"] not in ("none", "(ntsc)")]
        assert locked and any(t["debug"]["TransportStream"]["TransportErrors"] for t in theirs["tuners"]), \
            "the simulator served non-trivial figures"


def exporter_series(peer: dict) -> dict[tuple, float]:
    """The series mdlayher/hdhomerun_exporter's collector builds from the library's figures:
    device_info{model}; per tuner tuner_info{tuner,channel,lock}, the three ratios (percent / 100),
    network packets/s and errors; the CableCARD's bytes/s (bits / 8), overflow and resync once."""
    out = {("hdhomerun_device_info", (("model", peer["model"]),)): 1.0}
    cards = [t["debug"]["CableCARD"] for t in peer["tuners"] if t["debug"]["CableCARD"] is not None]
    # one CableCARD per device: every tuner must report the same figures, or which tuner's the
    # exporter takes would matter
    assert all(c == cards[0] for c in cards), cards
    for t in peer["tuners"]:
        d, tuner = t["debug"], (("tuner", str(t["index"])),)
        tun, net = d["Tuner"], d["Network"]
        out[("hdhomerun_tuner_info", (("channel", tun["Channel"]), ("lock", tun["Lock"])) + tuner)] = 1.0
        out[("hdhomerun_tuner_signal_strength_ratio", tuner)] = tun["SignalStrength"] / 100
        out[("hdhomerun_tuner_signal_to_noise_ratio", tuner)] = tun["SignalToNoiseQuality"] / 100
        out[("hdhomerun_tuner_symbol_error_ratio", tuner)] = tun["SymbolErrorQuality"] / 100
        out[("hdhomerun_network_packets_per_second", tuner)] = float(net["PacketsPerSecond"])
        out[("hdhomerun_network_errors", tuner)] = float(net["Errors"])
    if cards:
        out[("hdhomerun_cablecard_bytes_per_second", ())] = cards[0]["BitsPerSecond"] / 8
        out[("hdhomerun_cablecard_overflow", ())] = float(cards[0]["Overflow"])
        out[("hdhomerun_cablecard_resync", ())] = float(cards[0]["Resync"])
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_classic_probe_serves_what_hdhomerun_exporter_derives_from_the_library(case):
    with simulator(case) as sim, metrics_peer() as go_base:
        peer = run_peer(sim.address_text)
        go_status, _, go_body = fetch(f"{go_base}/metrics?target={sim.address_text}")
        with running_exporter("--metrics.naming=classic", "--hdhomerun.allow-target=127.0.0.0/8:*",
                              "--no-collector.cpu", "--no-collector.filesystem") as base:
            status, _, body = fetch(f"{base}/probe?target={sim.address_text}")
    assert status == 200 and go_status == 200, go_body
    ours = samples(body.decode())
    expected = exporter_series(peer)
    names = {k[0] for k in expected}
    # the peer's client_golang page is the exporter's: every series of the model, nothing else
    theirs = samples(go_body.decode())
    assert theirs == expected
    assert {k: v for k, v in ours.items() if k[0] in names} == theirs
    for name in names:  # the exporter exports only gauges, and so do we in classic mode
        assert f"# TYPE {name} gauge" in go_body.decode() and f"# TYPE {name} gauge" in body.decode(), name
    assert ours[("hdhomerun_tuners", ())] == len(peer["tuners"])
    assert ours[("hdhomerun_up", ())] == 1.0


@pytest.mark.parametrize("fault", ["bad_crc", "garbage", "truncate", "drop"])
def test_a_broken_reply_gives_no_figures_from_the_library_nor_from_us(fault):
    """Corrupted, cut or never sent: both refuse it, and both give up at their deadline."""
    with Simulator("127.0.0.1", 0, tuners=2) as sim:
        sim.set_faults(**{fault: True})
        theirs = run_peer(sim.address_text, timeout="1s")
        with Client(sim.address_text, timeout=1) as ours, pytest.raises(HDHomeRunError):
            ours.model()
    assert theirs["model"] is None and theirs["model_error"], theirs
    assert theirs["tuners"] == [] and theirs["tuner_error"], theirs


def test_the_library_reads_the_simulator_on_ipv6_loopback():
    with Simulator("::1", 0, tuners=2) as sim, Client(sim.address_text, timeout=5) as ours:
        assert sim.address_text.startswith("[::1]:")
        theirs = run_peer(sim.address_text)
        assert theirs["model"] == ours.model() and len(theirs["tuners"]) == probed_tuner_count(sim.address_text) == 2


def test_the_peer_refuses_anything_but_a_loopback_host_and_port():
    peer = go_peer("hdhomerun-peer")
    for address in ("192.0.2.1:65001", "localhost:65001", "127.0.0.1", "255.255.255.255:65001"):
        done = subprocess.run([peer, address], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "hdhomerun-peer:" in done.stderr, (address, done)


def test_the_metrics_page_refuses_a_missing_or_non_loopback_target_and_fails_on_a_broken_device():
    with metrics_peer(timeout="1s") as base, Simulator("127.0.0.1", 0, tuners=2) as sim:
        assert fetch(f"{base}/metrics")[0] == 400
        for target in ("192.0.2.1:65001", "localhost:65001", "127.0.0.1", "255.255.255.255:65001"):
            assert fetch(f"{base}/metrics?target={target}")[0] == 400, target
        assert fetch(f"{base}/metrics?target={sim.address_text}")[0] == 200
        sim.set_faults(drop=True)  # no up metric in the exporter: a device that does not answer is a 500
        status, _, body = fetch(f"{base}/metrics?target={sim.address_text}")
        assert status == 500 and b"model" in body, body


def test_every_percent_and_rate_is_exported_as_the_exporter_divides_it():
    """Unit check behind the finding above: for every percent 0..100 the ratio is exactly
    percent / 100 (95 * 0.01 would be 0.9500000000000001), bits/s exactly bits / 8."""
    from types import SimpleNamespace

    from otel_bare_metal.collectors.hdhomerun.fleet import DeviceReading, FleetReading
    from otel_bare_metal.collectors.hdhomerun.metrics import HDHomeRunObservers

    tuners = {p: parse_tuner_debug(f"tun: ch=auto:7 lock=8vsb ss={p} snq={p} seq={p} dbg=0\n"
                                   f"ts:  bps={p * 1000 + 3} te=0 crc=0\n") for p in range(101)}
    fleet = FleetReading([DeviceReading("127.0.0.1:65001", True, 0.1, tuners=tuners)])
    observers = {m.name: f for m, f in HDHomeRunObservers(SimpleNamespace(result=fleet)).observers().items()}
    for name in ("signal_strength", "signal_to_noise_quality", "symbol_quality"):
        got = {o.attributes["hdhomerun.tuner"]: o.value for o in observers[f"hdhomerun.tuner.{name}"]()}
        assert got == {p: p / 100 for p in range(101)}, name
    rates = {o.attributes["hdhomerun.tuner"]: o.value for o in observers["hdhomerun.tuner.transport_rate"]()}
    assert rates == {p: (p * 1000 + 3) / 8 for p in range(101)}
