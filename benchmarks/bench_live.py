"""End-to-end live benchmark: tcpreplay over a veth pair into a MonitorSession.

Usage (root, iproute2 and tcpreplay installed):
  .venv/bin/python benchmarks/bench_live.py [--mbps 50 500] [--pps 100000] [--topspeed]
      [--capture FILE] [--packets N] [--model DIR | --no-model] [--buffer-mb 32]
      [--max-devices 64] [--store-thread] [--max-wait-ms MS] [--capture-timeout-ms MS]
      [--no-capacity] [--json OUT]

Without rate options it runs --mbps 50 500 --pps 100000 --topspeed. Without --capture a pcap
of N real Ethernet frames is built from ../shared/datasets (or tests/data). The shipped model
(models/default) is used when it exists, else none; the first line says which.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jixiaoan.runtime.bench import DEFAULT_RATES, as_dicts, run_live_bench  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mbps", type=float, nargs="*", default=[])
    p.add_argument("--pps", type=float, nargs="*", default=[])
    p.add_argument("--topspeed", action="store_true")
    p.add_argument("--capture")
    p.add_argument("--packets", type=int, default=300_000)
    p.add_argument("--model")
    p.add_argument("--no-model", action="store_true")
    p.add_argument("--buffer-mb", type=float, default=32.0)
    p.add_argument("--max-devices", type=int, default=64,
                   help="watch the capture's N most active local hosts")
    p.add_argument("--store-thread", action="store_true",
                   help="keep the store in the monitor's process (default: a child process)")
    p.add_argument("--max-wait-ms", type=float,
                   help="worker coalescing wait (default: MonitorOptions.max_wait_s)")
    p.add_argument("--capture-timeout-ms", type=float,
                   help="capture batch / ring block timeout (default: the MonitorOptions one)")
    p.add_argument("--no-capacity", action="store_true", help="skip the no-network run")
    p.add_argument("--json")
    a = p.parse_args(argv)
    tuning = {}
    if a.max_wait_ms is not None:
        tuning["max_wait_s"] = a.max_wait_ms / 1000
    if a.capture_timeout_ms is not None:
        tuning["capture_batch_timeout_s"] = a.capture_timeout_ms / 1000
    rates = [f"mbps={x:g}" for x in a.mbps] + [f"pps={x:g}" for x in a.pps]
    rates += ["top"] if a.topspeed else []
    model = None if a.no_model else (a.model or "auto")
    runs = run_live_bench(
        rates or DEFAULT_RATES, a.capture, a.packets, model, a.buffer_mb, a.max_devices,
        not a.store_thread, tuning=tuning, capacity=not a.no_capacity,
    )
    if a.json:
        Path(a.json).write_text(json.dumps(as_dicts(runs), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
