"""Timing of the capture stage (read, or read + parse) for benchmarks and ``jixiaoan bench``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import DEFAULT_BATCH_SIZE, read_capture


@dataclass
class Throughput:
    """Packets and file bytes processed in ``seconds`` (best of the repeats)."""

    packets: int
    file_bytes: int
    seconds: float

    @property
    def packets_per_second(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else float("inf")

    @property
    def megabytes_per_second(self) -> float:
        return self.file_bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")


def measure_capture(
    path: str | os.PathLike[str],
    parse: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    repeat: int = 3,
) -> Throughput:
    """Stream ``path`` through :func:`read_capture` (and :func:`parse_headers` when ``parse``)
    ``repeat`` times, keeping nothing, and return the fastest run."""
    best = float("inf")
    packets = 0
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        packets = 0
        for batch in read_capture(path, batch_size=batch_size):
            if parse:
                parse_headers(batch)
            packets += len(batch)
        best = min(best, time.perf_counter() - start)
    return Throughput(packets, os.path.getsize(path), best)
