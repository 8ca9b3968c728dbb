"""Print the capture stage throughput (read only, read + parse) on one capture file.

Usage: .venv/bin/python benchmarks/bench_capture.py CAPTURE [--batch-size N] [--repeat R]
(build a large capture first with benchmarks/make_bench_capture.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jixiaoan.capture.pcapfile import DEFAULT_BATCH_SIZE, read_capture  # noqa: E402
from jixiaoan.capture.throughput import measure_capture  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept")
    args = parser.parse_args(argv)
    for _ in read_capture(args.capture):  # compile the kernels, warm the page cache
        pass
    print(f"capture {args.capture}, batch size {args.batch_size}, best of {args.repeat}")
    for label, parse in (("read only", False), ("read + parse", True)):
        t = measure_capture(args.capture, parse, args.batch_size, args.repeat)
        print(
            f"{label:<13} {t.packets:>9} pkts {t.seconds:>7.3f} s "
            f"{t.packets_per_second:>13,.0f} pkt/s {t.megabytes_per_second:>8.1f} MB/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
