"""HDHomeRun network tuners: a pure-Python client of SiliconDust's native control
protocol (TCP/UDP port 65001) and command-line tools.  The device simulator, for tests and
benchmarks, is ``otel_bare_metal.hdhr.simulator`` (not part of the library's names).

This package is a *source*: it reads devices and returns plain typed records.  It never
imports OpenTelemetry.  Standard library only.

    >>> from otel_bare_metal.hdhr import Client
    >>> with Client("192.168.1.8") as device:            # doctest: +SKIP
    ...     debug = device.tuner_debug(0)
"""

from .client import (
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    MAX_TUNERS,
    Client,
    DeviceError,
    RequestTimeout,
    TransportError,
    format_address,
    is_unknown_variable,
    parse_address,
)
from .discover import DiscoveredDevice, device_id_valid, discover, parse_device_id
from .packet import (
    BadCRCError,
    BadLengthError,
    FrameTooLargeError,
    HDHomeRunError,
    Packet,
    ProtocolError,
    ShortFrameError,
    UnexpectedReplyError,
    decode,
    encode,
)
from .text import (
    CounterSection,
    FilterSection,
    NetworkSection,
    ParseError,
    TransportSection,
    TunerDebug,
    TunerSection,
    parse_tuner_debug,
)

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "MAX_TUNERS",
    "BadCRCError",
    "BadLengthError",
    "Client",
    "CounterSection",
    "DeviceError",
    "DiscoveredDevice",
    "FilterSection",
    "FrameTooLargeError",
    "HDHomeRunError",
    "NetworkSection",
    "Packet",
    "ParseError",
    "ProtocolError",
    "RequestTimeout",
    "ShortFrameError",
    "TransportError",
    "TransportSection",
    "TunerDebug",
    "TunerSection",
    "UnexpectedReplyError",
    "decode",
    "device_id_valid",
    "discover",
    "encode",
    "format_address",
    "is_unknown_variable",
    "parse_address",
    "parse_device_id",
    "parse_tuner_debug",
]
