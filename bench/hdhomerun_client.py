"""How many GET requests per second the HDHomeRun client sustains on one connection.

Starts the simulator on 127.0.0.1 (port 0: loopback only, never broadcasts), opens one
Client and issues ``get`` requests in a loop bounded in time (``--seconds``, default 3)
and in count (``--max-requests``), then prints the rate.  Client and simulator share one
Python process (and its GIL), so this is a lower bound for a real device's client side.

    PYTHONPATH=. python bench/hdhomerun_client.py [--seconds 3] [--variable /tuner1/debug]
"""

from __future__ import annotations

import argparse
import sys
import time

from otel_bare_metal.hdhr import Client
from otel_bare_metal.hdhr.simulator import Simulator


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--variable", default="/sys/model")
    args = parser.parse_args(argv)
    seconds = min(max(args.seconds, 0.1), 60.0)
    with Simulator("127.0.0.1", 0, tuners=4) as sim, Client(sim.address_text) as client:
        client.get(args.variable)  # connect and warm up
        count = 0
        start = time.perf_counter()
        end = start + seconds
        while count < args.max_requests and time.perf_counter() < end:
            client.get(args.variable)
            count += 1
        elapsed = time.perf_counter() - start
    print(f"{count / elapsed:.0f} requests/s ({count} x get {args.variable} in {elapsed:.2f} s, one connection)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
