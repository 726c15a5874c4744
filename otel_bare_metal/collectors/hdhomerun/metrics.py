"""The hdhomerun collector's metrics: its rows (name, kind, unit, attributes, classic names,
after hdhomerun_exporter's where it has the figure) and the observers that map device readings
to them.

Percentages become ratios (ss / 100), bits per second become bytes per second (bps / 8), and
the device's counters (resync, overflow, te, crc, err) are counters, not gauges.  A field the
firmware does not send produces no point rather than a made-up zero.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Iterable, Mapping

from opentelemetry.metrics import Observation

from otel_bare_metal.collectors.hdhomerun.fleet import DeviceReading, FleetReading
from otel_bare_metal.telemetry.collection import SourceWorker, Observer
from otel_bare_metal.telemetry.definitions import Classic, Kind, Metric

# hdhomerun_exporter serves one device per scrape (``instance`` names it); our /metrics page can
# carry several configured devices, so there the device is a ``device`` label (dropped on /probe).
CLASSIC_DEV = MappingProxyType({"hdhomerun.device": "device"})
CLASSIC_TUNER = MappingProxyType({"hdhomerun.device": "device", "hdhomerun.tuner": "tuner"})

DEV = ("hdhomerun.device",)
TUNER = ("hdhomerun.device", "hdhomerun.tuner")


def _tuner(name: str, kind: Kind, unit: str, description: str, extra: tuple[str, ...] = (),
           classic: tuple[Classic, ...] = ()) -> Metric:
    return Metric(name, kind, unit, description, TUNER + extra, "hdhomerun", classic=classic)


def _c(name: str, labels: Mapping[str, str], description: str, kind: Kind | None = None) -> tuple[Classic, ...]:
    return (Classic(name, labels, description, kind=kind),)


# hdhomerun_exporter's names where it has the figure (all gauges there, counters included);
# our extra series follow its style.
UP = Metric(
    "hdhomerun.up", Kind.GAUGE, "", "1 when the HDHomeRun device answered this collection, else 0.", DEV, "hdhomerun",
    classic=_c("hdhomerun_up", CLASSIC_DEV, "Whether the device answered (extra)."))
SCRAPE_DURATION = Metric(
    "hdhomerun.scrape.duration", Kind.GAUGE, "s", "Time spent collecting this HDHomeRun device.", DEV, "hdhomerun",
    classic=_c("hdhomerun_scrape_duration_seconds", CLASSIC_DEV, "Time spent collecting the device (extra)."))
DEVICE_INFO = Metric(
    "hdhomerun.device.info", Kind.GAUGE, "", "Always 1; the device's model, hardware model, firmware version and id as attributes.",
    DEV + ("hdhomerun.model", "hdhomerun.hwmodel", "hdhomerun.version", "hdhomerun.device_id"), "hdhomerun",
    classic=_c("hdhomerun_device_info", MappingProxyType({**CLASSIC_DEV, "hdhomerun.model": "model"}), "Metadata about the device."))
TUNER_COUNT = Metric(
    "hdhomerun.tuner.count", Kind.GAUGE, "{tuner}", "Number of tuners the device has.", DEV, "hdhomerun",
    prometheus="hdhomerun_tuners",
    classic=_c("hdhomerun_tuners", CLASSIC_DEV, "Number of tuners the device has (extra)."))
TUNER_INFO = _tuner(
    "hdhomerun.tuner.info", Kind.GAUGE, "", "Always 1; the channel asked for and the modulation locked (tun: line) as attributes.",
    ("hdhomerun.channel", "hdhomerun.lock"),
    _c("hdhomerun_tuner_info", MappingProxyType({**CLASSIC_TUNER, "hdhomerun.channel": "channel", "hdhomerun.lock": "lock"}),
       "Metadata about each of the tuners available to a device."))
TUNER_SIGNAL_STRENGTH = _tuner(
    "hdhomerun.tuner.signal_strength", Kind.GAUGE, "1", "Signal strength, 0 to 1 (ss / 100).",
    classic=_c("hdhomerun_tuner_signal_strength_ratio", CLASSIC_TUNER, "Television signal strength ratio for this tuner."))
TUNER_SIGNAL_TO_NOISE_QUALITY = _tuner(
    "hdhomerun.tuner.signal_to_noise_quality", Kind.GAUGE, "1", "Signal-to-noise quality, 0 to 1 (snq / 100).",
    classic=_c("hdhomerun_tuner_signal_to_noise_ratio", CLASSIC_TUNER, "Television signal-to-noise ratio for this tuner."))
TUNER_SYMBOL_QUALITY = _tuner(
    "hdhomerun.tuner.symbol_quality", Kind.GAUGE, "1", "Symbol error quality, 0 to 1 (seq / 100; 1 = no errors).",
    classic=_c("hdhomerun_tuner_symbol_error_ratio", CLASSIC_TUNER, "Television symbol error ratio for this tuner."))
TUNER_RAW_RATE = _tuner(
    "hdhomerun.tuner.raw_rate", Kind.GAUGE, "By/s", "Raw channel rate (dev: bps / 8), where the firmware sends it.",
    classic=_c("hdhomerun_tuner_raw_bytes_per_second", CLASSIC_TUNER, "Raw channel bytes per second (extra)."))
TUNER_TRANSPORT_RATE = _tuner(
    "hdhomerun.tuner.transport_rate", Kind.GAUGE, "By/s", "Transport stream rate (ts: bps / 8).",
    classic=_c("hdhomerun_tuner_transport_bytes_per_second", CLASSIC_TUNER, "Transport stream bytes per second (extra)."))
TUNER_NETWORK_RATE = _tuner(
    "hdhomerun.tuner.network_rate", Kind.GAUGE, "By/s", "Network stream rate (net: bps / 8), where the firmware sends it.",
    classic=_c("hdhomerun_network_bytes_per_second", CLASSIC_TUNER, "Bytes per second sent by the device for this tuner (extra)."))
TUNER_NETWORK_PACKET_RATE = _tuner(
    "hdhomerun.tuner.network_packet_rate", Kind.GAUGE, "{packet}/s", "Network packets sent per second (net: pps).",
    classic=_c("hdhomerun_network_packets_per_second", CLASSIC_TUNER,
               "Number of packets per second being sent by the device for this tuner."))
TUNER_RESYNCS = _tuner(
    "hdhomerun.tuner.resyncs", Kind.COUNTER, "{resync}", "Resynchronisations since the channel was set (dev: resync).",
    classic=_c("hdhomerun_tuner_resync_total", CLASSIC_TUNER, "Resynchronisations of this tuner (extra)."))
TUNER_OVERFLOWS = _tuner(
    "hdhomerun.tuner.overflows", Kind.COUNTER, "{overflow}", "Buffer overflows since the channel was set (dev: overflow).",
    classic=_c("hdhomerun_tuner_overflow_total", CLASSIC_TUNER, "Buffer overflows of this tuner (extra)."))
TUNER_TRANSPORT_ERRORS = _tuner(
    "hdhomerun.tuner.transport_errors", Kind.COUNTER, "{error}", "Transport stream errors since the channel was set (ts: te).",
    classic=_c("hdhomerun_tuner_transport_errors_total", CLASSIC_TUNER, "Transport stream errors of this tuner (extra)."))
TUNER_CRC_ERRORS = _tuner(
    "hdhomerun.tuner.crc_errors", Kind.COUNTER, "{error}", "Transport stream CRC errors since the channel was set (ts: crc).",
    classic=_c("hdhomerun_tuner_crc_errors_total", CLASSIC_TUNER, "Transport stream CRC errors of this tuner (extra)."))
TUNER_NETWORK_ERRORS = _tuner(
    "hdhomerun.tuner.network_errors", Kind.COUNTER, "{packet}", "Network packets dropped since the stream started (net: err).",
    classic=_c("hdhomerun_network_errors", CLASSIC_TUNER, "Number of device network errors for this tuner.", Kind.GAUGE))
TUNER_STREAM_STOP_REASON = _tuner(
    "hdhomerun.tuner.stream_stop_reason", Kind.GAUGE, "",
    "Why the network stream stopped (net: stop): 0 running, 1 intentional, 2 ICMP reject, 3 connection loss, 4 HTTP closed.",
    classic=_c("hdhomerun_network_stop_reason", CLASSIC_TUNER, "Why the network stream stopped (extra)."))
CABLECARD_RATE = Metric(
    "hdhomerun.cablecard.rate", Kind.GAUGE, "By/s", "CableCARD stream rate (cc: bps / 8); CableCARD models only.", DEV, "hdhomerun",
    classic=_c("hdhomerun_cablecard_bytes_per_second", CLASSIC_DEV, "Number of bytes per second being received by the CableCARD."))
CABLECARD_RESYNCS = Metric(
    "hdhomerun.cablecard.resyncs", Kind.COUNTER, "{resync}", "CableCARD resynchronisations (cc: resync).", DEV, "hdhomerun",
    classic=_c("hdhomerun_cablecard_resync", CLASSIC_DEV,
               "Number of re-sync operations due to missing sync byte in transport stream for the CableCARD.", Kind.GAUGE))
CABLECARD_OVERFLOWS = Metric(
    "hdhomerun.cablecard.overflows", Kind.COUNTER, "{overflow}", "CableCARD buffer overflows (cc: overflow).", DEV, "hdhomerun",
    classic=_c("hdhomerun_cablecard_overflow", CLASSIC_DEV, "Number of buffer overflows for the CableCARD.", Kind.GAUGE))

METRICS: tuple[Metric, ...] = (
    UP, SCRAPE_DURATION, DEVICE_INFO, TUNER_COUNT, TUNER_INFO, TUNER_SIGNAL_STRENGTH,
    TUNER_SIGNAL_TO_NOISE_QUALITY, TUNER_SYMBOL_QUALITY, TUNER_RAW_RATE, TUNER_TRANSPORT_RATE,
    TUNER_NETWORK_RATE, TUNER_NETWORK_PACKET_RATE, TUNER_RESYNCS, TUNER_OVERFLOWS,
    TUNER_TRANSPORT_ERRORS, TUNER_CRC_ERRORS, TUNER_NETWORK_ERRORS, TUNER_STREAM_STOP_REASON,
    CABLECARD_RATE, CABLECARD_RESYNCS, CABLECARD_OVERFLOWS,
)


class HDHomeRunObservers:
    def __init__(self, worker: SourceWorker):
        self._worker = worker

    def _devices(self) -> list[DeviceReading]:
        fleet: FleetReading | None = self._worker.result
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
    # reading (tests/hdhr/test_go_library_peer.py compares them with its library).
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

    def observers(self) -> dict[Metric, Observer]:
        f = self._tuner_field
        return {
            UP: self.up,
            SCRAPE_DURATION: self.duration,
            DEVICE_INFO: self.device_info,
            TUNER_COUNT: self.tuner_count,
            TUNER_INFO: self.tuner_info,
            TUNER_SIGNAL_STRENGTH: f(lambda t: t.tun and t.tun.signal_strength, 100),
            TUNER_SIGNAL_TO_NOISE_QUALITY: f(lambda t: t.tun and t.tun.snr_quality, 100),
            TUNER_SYMBOL_QUALITY: f(lambda t: t.tun and t.tun.symbol_quality, 100),
            TUNER_RAW_RATE: f(lambda t: t.dev and t.dev.bps, 8),
            TUNER_TRANSPORT_RATE: f(lambda t: t.ts and t.ts.bps, 8),
            TUNER_NETWORK_RATE: f(lambda t: t.net and t.net.bps, 8),
            TUNER_NETWORK_PACKET_RATE: f(lambda t: t.net and t.net.pps),
            TUNER_RESYNCS: f(lambda t: t.dev and t.dev.resync),
            TUNER_OVERFLOWS: f(lambda t: t.dev and t.dev.overflow),
            TUNER_TRANSPORT_ERRORS: f(lambda t: t.ts and t.ts.te),
            TUNER_CRC_ERRORS: f(lambda t: t.ts and t.ts.crc),
            TUNER_NETWORK_ERRORS: f(lambda t: t.net and t.net.err),
            TUNER_STREAM_STOP_REASON: f(lambda t: t.net and t.net.stop),
            CABLECARD_RATE: self._cablecard_field("bps", 8),
            CABLECARD_RESYNCS: self._cablecard_field("resync"),
            CABLECARD_OVERFLOWS: self._cablecard_field("overflow"),
        }


def attribute_key(reading: DeviceReading | None) -> tuple | None:
    """What decides the attribute sets the observers above give ``reading``'s series: the
    device's facts (``device_info``), its tuners and each tuner's channel and lock
    (``tuner_info``).  ``None`` for a reading without facts (a device down): its few series
    (``up``, the scrape duration) carry attributes every reading of the device has.  A reader
    that has seen two keys has kept the aggregations of both; one that has seen only one key
    keeps only series the next reading with that key observes again."""
    if reading is None or reading.info is None:
        return None
    return reading.address, reading.info, tuple(
        (n, t.tun.channel, t.tun.lock) if t.tun is not None else (n, None, None) for n, t in reading.tuners.items())
