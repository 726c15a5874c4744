"""Command-line tools in the spirit of SiliconDust's ``hdhomerun_config``.

    otel-bare-metal hdhomerun get [--timeout S] ADDRESS VARIABLE
    otel-bare-metal hdhomerun discover [--timeout S] [ADDRESS]
    otel-bare-metal hdhomerun simulate [--listen HOST:PORT] [--tuners N] [--latency S] ...

Exit codes of ``get``: 0 value printed; 1 the device answered an error (its message is
printed on stderr); 2 network or protocol failure (one line on stderr naming the cause)
or bad arguments.  ``discover`` exits 1 when nothing answered.

The top-level ``otel-bare-metal`` command calls :func:`main` with the arguments after
the word ``hdhomerun``; ``python -m otel_bare_metal.hdhr.cli`` works too.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from types import FrameType
from typing import Callable, NoReturn, Sequence

from .client import DEFAULT_PORT, DEFAULT_TIMEOUT, Client, DeviceError, RequestTimeout, TransportError, parse_address
from .discover import discover
from .packet import (
    MAX_TUNERS,
    BadCRCError,
    FrameTooLargeError,
    ProtocolError,
    ShortFrameError,
    UnexpectedReplyError,
)
from .simulator import Faults, Simulator

__all__ = ["main"]

PROG = "otel-bare-metal hdhomerun"
EXIT_OK = 0
EXIT_DEVICE_ERROR = 1
EXIT_FAILURE = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _seconds(allow_zero: bool) -> Callable[[str], float]:
    """An argparse type for a number of seconds up to an hour: (0, 3600], or [0, 3600]."""
    interval = "[0, 3600]" if allow_zero else "(0, 3600]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero) or value > 3600:
            raise argparse.ArgumentTypeError(f"seconds must be in {interval}: {text!r}")
        return value

    return parse


_positive_seconds = _seconds(allow_zero=False)
_non_negative_seconds = _seconds(allow_zero=True)


def _tuners(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= MAX_TUNERS:
        raise argparse.ArgumentTypeError(f"tuners must be between 0 and {MAX_TUNERS}: {text!r}")
    return value


def _listen(text: str) -> tuple[str, int]:
    try:
        return parse_address(text, default_port=DEFAULT_PORT, allow_port_zero=True)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _build_parser() -> _Parser:
    parser = _Parser(prog=PROG, description="Talk to (or simulate) SiliconDust HDHomeRun tuners.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    get = sub.add_parser("get", help="print the value of a device variable")
    get.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"deadline for the whole request in seconds (default {DEFAULT_TIMEOUT})",
    )
    get.add_argument("address", metavar="ADDRESS", help="host, host:port or [ipv6]:port")
    get.add_argument("variable", metavar="VARIABLE", help="e.g. /sys/model or /tuner0/debug")

    disc = sub.add_parser("discover", help="find devices (broadcast when no ADDRESS is given)")
    disc.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=0.4,
        help="total listening time, split over 2 attempts (default 0.4)",
    )
    disc.add_argument("--port", type=int, default=DEFAULT_PORT, help=argparse.SUPPRESS)
    disc.add_argument("address", metavar="ADDRESS", nargs="?", help="unicast to this host, host:port or [ipv6]:port")

    sim = sub.add_parser("simulate", help="run a simulated device until SIGINT/SIGTERM")
    sim.add_argument(
        "--listen",
        type=_listen,
        default=("0.0.0.0", DEFAULT_PORT),
        metavar="HOST:PORT",
        help="TCP and UDP address to serve (default 0.0.0.0:65001; port 0 picks one)",
    )
    sim.add_argument("--tuners", type=_tuners, default=4, help="number of tuners (default 4)")
    sim.add_argument("--cablecard", action="store_true", help="act as a CableCARD model")
    sim.add_argument("--latency", type=_non_negative_seconds, default=0.0, help="reply delay")
    sim.add_argument("--drop", action="store_true", help="fault: never answer get requests")
    sim.add_argument("--bad-crc", action="store_true", help="fault: corrupt reply checksums")
    sim.add_argument("--truncate", action="store_true", help="fault: send half a reply, close")
    sim.add_argument("--garbage", action="store_true", help="fault: answer with garbage bytes")
    sim.add_argument(
        "--drip", type=_non_negative_seconds, default=0.0, metavar="S",
        help="fault: send replies one byte every S seconds",
    )
    return parser


def _failure_line(error: BaseException, address: str) -> str:
    if isinstance(error, RequestTimeout):
        return f"timeout: {error}"
    if isinstance(error, BadCRCError):
        return f"bad checksum in reply from {address}: {error}"
    if isinstance(error, (ShortFrameError, FrameTooLargeError, UnexpectedReplyError, ProtocolError)):
        return f"malformed reply from {address}: {error}"
    if isinstance(error, TransportError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _cmd_get(args: argparse.Namespace) -> int:
    try:
        client = Client(args.address, timeout=args.timeout)
    except ValueError as e:
        print(f"{PROG} get: {e}", file=sys.stderr)
        return EXIT_FAILURE
    with client:
        try:
            value = client.get(args.variable)
        except DeviceError as e:
            print(e.message, file=sys.stderr)
            return EXIT_DEVICE_ERROR
        except (TransportError, ProtocolError) as e:
            print(_failure_line(e, client.address), file=sys.stderr)
            return EXIT_FAILURE
    sys.stdout.write(value if value.endswith("\n") else value + "\n")
    return EXIT_OK


def _cmd_discover(args: argparse.Namespace) -> int:
    try:
        devices = discover(
            args.address,
            port=args.port,
            attempts=2,
            window=args.timeout / 2,
            allow_broadcast=args.address is None,
        )
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        print(f"{PROG} discover: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    if not devices:
        print("no devices found", file=sys.stderr)
        return EXIT_DEVICE_ERROR
    for d in devices:
        kind = "hdhomerun device" if d.is_tuner else f"hdhomerun device (type {d.device_type})"
        print(f"{kind} {d.device_id_hex} found at {d.ip}")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    host, port = args.listen
    faults = Faults(
        latency=args.latency,
        drop=args.drop,
        bad_crc=args.bad_crc,
        truncate=args.truncate,
        garbage=args.garbage,
        drip=args.drip,
    )
    sim = Simulator(host, port, tuners=args.tuners, faults=faults, cablecard=args.cablecard)
    try:
        sim.start()
    except OSError as e:
        print(f"{PROG} simulate: {e.strerror or e}", file=sys.stderr)
        return EXIT_FAILURE
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        print(
            f"simulating hdhomerun device {sim.device_id:08X} with {sim.tuners} tuners "
            f"on {sim.address_text} (TCP and UDP); stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit code (never raises for bad input)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except _UsageError as e:
        print(f"{e} (try --help)", file=sys.stderr)
        return EXIT_FAILURE
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else EXIT_OK
    if args.command == "get":
        return _cmd_get(args)
    if args.command == "discover":
        return _cmd_discover(args)
    return _cmd_simulate(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
