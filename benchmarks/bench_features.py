"""Print the throughput (packets/s) of the feature stages on one capture file.

Usage: .venv/bin/python benchmarks/bench_features.py CAPTURE [--batch-size N] [--repeat R]
       [--afterimage]
(build a large capture first: .venv/bin/python benchmarks/make_bench_capture.py OUT.pcap)

The capture is read and parsed once, outside the timings; then each stage runs over all
batches in order with fresh state, best of R runs: session tracker, anonymised bytes, Whisper
frequency features (on the tracker's session ids), bytes + frequency together, and with
``--afterimage`` the whole FeatureExtractor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jixiaoan.capture.parse import parse_headers  # noqa: E402
from jixiaoan.capture.pcapfile import read_capture  # noqa: E402
from jixiaoan.features.anonymize import anonymized_bytes  # noqa: E402
from jixiaoan.features.batch import FeatureConfig  # noqa: E402
from jixiaoan.features.frequency import WhisperFrequency  # noqa: E402
from jixiaoan.features.sessions import SessionTracker  # noqa: E402


def best_time(run, repeat: int) -> float:
    """Shortest wall time of ``repeat`` calls of ``run()``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--afterimage", action="store_true", help="also time FeatureExtractor")
    args = parser.parse_args(argv)
    cfg = FeatureConfig()
    frames = list(read_capture(args.capture, batch_size=args.batch_size))
    headers = [parse_headers(f) for f in frames]
    n = sum(len(h) for h in headers)

    def track():
        tracker = SessionTracker(cfg)
        return [(tracker.assign(h)[0], tracker.forgotten) for h in headers]

    sessions = track()

    def anonymize():
        for f, h in zip(frames, headers):
            anonymized_bytes(f, h, cfg.n_bytes)

    def frequency():
        freq = WhisperFrequency(cfg)
        for h, (s, gone) in zip(headers, sessions):
            freq.transform(h, s, forgotten=gone)

    def bytes_and_frequency():
        anonymize()
        frequency()

    stages = [
        ("session tracker", track),
        ("anonymised bytes", anonymize),
        ("frequency features", frequency),
        ("bytes + frequency", bytes_and_frequency),
    ]
    if args.afterimage:
        from jixiaoan.features.extractor import FeatureExtractor

        def extractor():
            ex = FeatureExtractor(cfg)
            for f, h in zip(frames, headers):
                ex.transform(f, h)

        stages.append(("FeatureExtractor (all)", extractor))
    n_sessions = int(max(s.max() for s, _ in sessions if len(s)) + 1)
    print(
        f"capture {args.capture}: {n} packets, {n_sessions} sessions, "
        f"batch size {args.batch_size}, best of {args.repeat}"
    )
    for name, run in stages:
        seconds = best_time(run, args.repeat)
        print(f"  {name:24s} {n / seconds:12,.0f} pkt/s  ({seconds:.3f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
