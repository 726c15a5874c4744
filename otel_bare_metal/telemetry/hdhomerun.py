"""Map HDHomeRun device readings to the ``hdhomerun.*`` instruments of the definitions table.

Percentages become ratios (ss / 100), bits per second become bytes per second (bps / 8), and
the device's counters (resync, overflow, te, crc, err) are counters, not gauges.  A field the
firmware does not send produces no point rather than a made-up zero.
"""

from __future__ import annotations

from typing import Callable, Iterable

from opentelemetry.metrics import Observation

from otel_bare_metal.sources.hdhomerun import DeviceReading, FleetReading
from otel_bare_metal.telemetry.collection import Collector, Observer


class HDHomeRunObservers:
    def __init__(self, collector: Collector):
        self._collector = collector

    def _devices(self) -> list[DeviceReading]:
        fleet: FleetReading | None = self._collector.result
        return [] if fleet is None else fleet.devices

    def _tuners(self):
        for d in self._devices():
            for n, debug in d.tuners.items():
                yield {"hdhomerun.device": d.address, "hdhomerun.tuner": n}, debug

    def up(self) -> Iterable[Observation]:
        return [Observation(1 if d.up else 0, {"hdhomerun.device": d.address}) for d in self._devices()]

    def duration(self) -> Iterable[Observation]:
        return [Observation(d.duration, {"hdhomerun.device": d.address}) for d in self._devices()]

    def device_info(self) -> Iterable[Observation]:
        out = []
        for d in self._devices():
            if d.info is not None:
                out.append(Observation(1, {
                    "hdhomerun.device": d.address, "hdhomerun.model": d.info.model, "hdhomerun.hwmodel": d.info.hwmodel,
                    "hdhomerun.version": d.info.version, "hdhomerun.device_id": d.info.device_id,
                }))
        return out

    def tuner_count(self) -> Iterable[Observation]:
        return [Observation(d.info.tuner_count, {"hdhomerun.device": d.address}) for d in self._devices() if d.info]

    def tuner_info(self) -> Iterable[Observation]:
        out = []
        for attrs, debug in self._tuners():
            if debug.tun is not None:
                out.append(Observation(1, {**attrs, "hdhomerun.channel": debug.tun.channel or "none",
                                           "hdhomerun.lock": debug.tun.lock or "none"}))
        return out

    # Scaling divides (ss / 100, bps / 8) and never multiplies by the reciprocal: 95 * 0.01 is
    # 0.9500000000000001, 95 / 100 is 0.95, the value hdhomerun_exporter serves for the same
    # reading (tests/hdhomerun/test_go_library_peer.py compares them with its library).
    def _tuner_field(self, get: Callable, divisor: int = 1) -> Observer:
        def observe() -> Iterable[Observation]:
            out = []
            for attrs, debug in self._tuners():
                value = get(debug)
                if value is not None:
                    out.append(Observation(value / divisor if divisor != 1 else value, attrs))
            return out

        return observe

    def _cablecard_field(self, name: str, divisor: int = 1) -> Observer:
        def observe() -> Iterable[Observation]:
            out = []
            for d in self._devices():
                # CableCARD figures are shared by all tuners: take them once per device.
                cc = next((t.cc for t in d.tuners.values() if t.cc is not None), None)
                value = getattr(cc, name) if cc is not None else None
                if value is not None:
                    out.append(Observation(value / divisor if divisor != 1 else value, {"hdhomerun.device": d.address}))
            return out

        return observe

    def observers(self) -> dict[str, Observer]:
        f = self._tuner_field
        return {
            "hdhomerun.up": self.up,
            "hdhomerun.scrape.duration": self.duration,
            "hdhomerun.device.info": self.device_info,
            "hdhomerun.tuner.count": self.tuner_count,
            "hdhomerun.tuner.info": self.tuner_info,
            "hdhomerun.tuner.signal_strength": f(lambda t: t.tun and t.tun.signal_strength, 100),
            "hdhomerun.tuner.signal_to_noise_quality": f(lambda t: t.tun and t.tun.snr_quality, 100),
            "hdhomerun.tuner.symbol_quality": f(lambda t: t.tun and t.tun.symbol_quality, 100),
            "hdhomerun.tuner.raw_rate": f(lambda t: t.dev and t.dev.bps, 8),
            "hdhomerun.tuner.transport_rate": f(lambda t: t.ts and t.ts.bps, 8),
            "hdhomerun.tuner.network_rate": f(lambda t: t.net and t.net.bps, 8),
            "hdhomerun.tuner.network_packet_rate": f(lambda t: t.net and t.net.pps),
            "hdhomerun.tuner.resyncs": f(lambda t: t.dev and t.dev.resync),
            "hdhomerun.tuner.overflows": f(lambda t: t.dev and t.dev.overflow),
            "hdhomerun.tuner.transport_errors": f(lambda t: t.ts and t.ts.te),
            "hdhomerun.tuner.crc_errors": f(lambda t: t.ts and t.ts.crc),
            "hdhomerun.tuner.network_errors": f(lambda t: t.net and t.net.err),
            "hdhomerun.tuner.stream_stop_reason": f(lambda t: t.net and t.net.stop),
            "hdhomerun.cablecard.rate": self._cablecard_field("bps", 8),
            "hdhomerun.cablecard.resyncs": self._cablecard_field("resync"),
            "hdhomerun.cablecard.overflows": self._cablecard_field("overflow"),
        }
