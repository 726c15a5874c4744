"""Run N simulated HDHomeRun devices in this process, for benchmarks that keep the devices'
CPU out of the process that measures (real tuners are separate hardware).

    python bench/simulators.py COUNT LATENCY DEAD

Prints the devices' addresses on one line, then answers ``count`` on stdin with the total
number of requests served; exits at end of input.  Loopback only; the first DEAD devices
accept connections and never answer.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from otel_bare_metal.hdhr.simulator import Faults, Simulator  # noqa: E402


def main() -> int:
    count, latency, dead = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    sims = [Simulator("127.0.0.1", 0, tuners=4, faults=Faults(latency=latency, drop=i < dead)).start() for i in range(count)]
    print(" ".join(s.address_text for s in sims), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "count":
                print(sum(s.requests_served for s in sims), flush=True)
    finally:
        for s in sims:
            s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
