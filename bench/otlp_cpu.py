"""CPU the OTLP push path adds: the exporter idle (no scrapes) for --seconds, without push and
with push to a local OTLP receiver every --interval seconds, side by side.  Loopback only.

    .venv/bin/python bench/otlp_cpu.py [--seconds 60] [--interval 10] [--protocol grpc]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import cpu_seconds, free_port, ours, server  # noqa: E402
from otlp_receiver import OTLPReceiver  # noqa: E402


def idle_cpu(seconds: float, env: dict) -> float:
    port = free_port()
    with server(ours(port), port, ready_path="/healthz", env=env) as proc:
        time.sleep(1.0)  # start-up done
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        return cpu_seconds(proc.pid) - before


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--interval", type=float, default=10)
    p.add_argument("--protocol", default="grpc", choices=["grpc", "http/protobuf"])
    args = p.parse_args()
    base = idle_cpu(args.seconds, {})
    with OTLPReceiver() as rx:
        endpoint = rx.grpc_endpoint if args.protocol == "grpc" else rx.http_endpoint
        pushed = idle_cpu(args.seconds, {"OTEL_METRICS_EXPORTER": "prometheus,otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                                         "OTEL_EXPORTER_OTLP_PROTOCOL": args.protocol,
                                         "OTEL_METRIC_EXPORT_INTERVAL": str(int(args.interval * 1000))})
        exports = len(rx.received)
    added = pushed - base
    print(f"| mode | CPU s over {args.seconds:.0f} s | CPU % of one core |")
    print("|---|---|---|")
    print(f"| /metrics only, idle | {base:.3f} | {100 * base / args.seconds:.3f} |")
    print(f"| + OTLP {args.protocol} every {args.interval:.0f} s ({exports} exports) | {pushed:.3f} | {100 * pushed / args.seconds:.3f} |")
    print(f"\nPush adds {added:.3f} CPU s per {args.seconds:.0f} s = {100 * added / args.seconds:.3f} % of one core"
          f" ({1000 * added / max(1, exports):.1f} ms per export).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
