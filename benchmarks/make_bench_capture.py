"""Build a large Ethernet pcap for benchmarks by concatenating real captures.

Usage: .venv/bin/python benchmarks/make_bench_capture.py OUT.pcap [--packets N] [--source DIR]
       [--min-frame BYTES] [--max-frame BYTES]   (e.g. 1000 and 1514: a bulk-transfer mix)

Sources: ../shared/datasets when present, else tests/data (repeated until N packets).
Only Ethernet frames are kept (classic pcap has one link type); every file is shifted in time
to follow the previous one; gaps between packets are clipped to [0, 60] s, so time never\ngoes back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jixiaoan.capture.batch import LINKTYPE_ETHERNET, CaptureError  # noqa: E402
from jixiaoan.capture.pcapfile import read_capture  # noqa: E402
from jixiaoan.capture.pcapwriter import PcapWriter  # noqa: E402

MAX_GAP = 60.0  # seconds; larger (or negative) gaps inside a file are clipped
DEFAULT_SOURCES = (ROOT.parent / "shared" / "datasets", ROOT / "tests" / "data")


def capture_files(source: Path | None) -> list[Path]:
    """Captures under ``source``, or under the first default source that has any."""
    for folder in [source] if source else DEFAULT_SOURCES:
        files = sorted(p for p in folder.rglob("*") if p.suffix in (".pcap", ".pcapng"))
        if files:
            return files
    raise SystemExit("no capture files found")


def build(
    out: Path, packets: int, files: list[Path], min_frame: int = 0, max_frame: int = 1 << 20
) -> int:
    """Write at least ``packets`` Ethernet frames from ``files`` (cycled) to ``out``; only
    frames of ``min_frame`` to ``max_frame`` captured bytes."""
    written, clock = 0, 1_700_000_000.0
    with PcapWriter(out, linktype=LINKTYPE_ETHERNET) as writer:
        while written < packets:
            before = written
            for path in files:
                previous = None
                try:
                    for batch in read_capture(path):
                        keep = batch.linktype == LINKTYPE_ETHERNET
                        size = batch.caplen
                        batch = batch.take(keep & (size >= min_frame) & (size <= max_frame))
                        if not len(batch):
                            continue
                        previous = batch.ts[0] if previous is None else previous
                        gaps = np.diff(batch.ts, prepend=previous).clip(0.0, MAX_GAP)
                        previous = batch.ts[-1]
                        batch.ts = clock + np.cumsum(gaps)
                        clock = float(batch.ts[-1])
                        writer.write(batch)
                        written += len(batch)
                except CaptureError:
                    pass  # keep what came before the damage
                clock += 0.5
                if written >= packets:
                    break
            if written == before:
                raise SystemExit("no Ethernet frames in the sources")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--packets", type=int, default=300_000)
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--min-frame", type=int, default=0, help="drop shorter frames")
    parser.add_argument("--max-frame", type=int, default=1 << 20, help="drop longer frames")
    args = parser.parse_args(argv)
    files = capture_files(args.source)
    n = build(args.out, args.packets, files, args.min_frame, args.max_frame)
    size = args.out.stat().st_size / 1e6
    print(f"wrote {args.out}: {n} packets from {len(files)} files, {size:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
