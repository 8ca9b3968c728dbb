"""AfterImage throughput: packets per second on a capture and on a synthetic SYN flood.

    .venv/bin/python benchmarks/bench_afterimage.py [--capture FILE.pcap] [--flood 300000]
        [--sockets 30000] [--batch 8192] [--max-slots N]

Only ``AfterImage.transform`` is timed (headers are read and parsed beforehand); numba
compilation is excluded by a warm-up on a small batch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jixiaoan.capture.batch import HeaderBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.synthetic import syn_flood
from jixiaoan.features.afterimage import AfterImage
from jixiaoan.features.batch import FeatureConfig


def batches(h: HeaderBatch, size: int) -> list[HeaderBatch]:
    return [h.take(np.arange(i, min(i + size, len(h)))) for i in range(0, len(h), size)]


def run(name: str, parts: list[HeaderBatch], max_slots: int | None) -> None:
    ai = AfterImage(FeatureConfig(), max_slots=max_slots)
    n = sum(len(p) for p in parts)
    t0, c0 = time.perf_counter(), time.process_time()
    for p in parts:
        ai.transform(p)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{name}: {n} packets, {dt:.3f} s wall = {n / dt:,.0f} pkt/s, "
          f"{cpu:.3f} s CPU = {n / cpu:,.0f} pkt/s per core")
    print(f"    live slots {ai.slot_counts()}, evicted {ai.evictions}, expired {ai.expired_freed}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", help="pcap/pcapng file to time")
    ap.add_argument("--flood", type=int, default=300_000, help="SYN-flood packets (0: skip)")
    ap.add_argument("--sockets", type=int, default=30_000, help="spoofed sources in the flood")
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--max-slots", type=int, default=None, help="per-table cap")
    args = ap.parse_args()
    AfterImage().transform(syn_flood(2000, 100))  # compile / load the numba cache
    if args.capture:
        t0 = time.perf_counter()
        parts = [parse_headers(b) for b in read_capture(args.capture, batch_size=args.batch)]
        print(f"read+parse {args.capture}: {time.perf_counter() - t0:.2f} s")
        run(f"capture {args.capture}", parts, args.max_slots)
    if args.flood:
        h = syn_flood(args.flood, args.sockets)
        run(f"SYN flood ({args.sockets} sockets)", batches(h, args.batch), args.max_slots)
        run(f"SYN flood ({args.sockets} sockets, cap 4096)", batches(h, args.batch), 4096)
        run("SYN flood (every packet a new source)",
            batches(syn_flood(args.flood, 2**24), args.batch), args.max_slots)  # fmt: skip


if __name__ == "__main__":
    main()
