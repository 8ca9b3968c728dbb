"""Running a capture file through the engine (the ``import`` and ``analyze`` commands)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from jixiaoan.capture.batch import CaptureError
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.engine.batch import ClassifiedBatch, Device
from jixiaoan.engine.devices import DeviceDiscovery
from jixiaoan.engine.pipeline import Engine
from jixiaoan.engine.summary import RunSummary

Sink = Callable[[ClassifiedBatch], None]


@dataclass
class RunResult:
    """Outcome of one capture run."""

    packets: int = 0
    seconds: float = 0.0
    error: str | None = None  # the capture's damage, if any (packets before it were processed)
    summary: RunSummary | None = None
    devices: list[Device] = field(default_factory=list)


def discover_devices(
    path: str, batch_size: int = 65536, limit: int = 64
) -> tuple[list[Device], str | None]:
    """The local devices a capture shows (a fast parse-only pass), and its damage if any.

    A capture without any LAN address yields its most active unicast sources instead."""
    found = DeviceDiscovery()
    error = None
    try:
        for frames in read_capture(path, batch_size=batch_size):
            found.observe(parse_headers(frames))
    except CaptureError as exc:
        error = str(exc)
    devices = found.devices() or found.devices(local_only=False)
    return devices[:limit], error


def _progress(total_bytes: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total_bytes, unit="B", unit_scale=True, desc="reading", leave=False)


def run_capture(
    path: str,
    engine: Engine,
    sinks: Iterable[Sink] = (),
    batch_size: int = 16384,
    progress: bool = False,
) -> RunResult:
    """Stream ``path`` through ``engine`` and hand every classified batch to ``sinks``.

    A damaged capture is processed up to the damage; the error is returned, not raised.
    """
    sinks = list(sinks)
    summary = RunSummary(len(engine.devices))
    result = RunResult(summary=summary, devices=engine.devices)
    bar = _progress(os.path.getsize(path), progress)
    start = time.perf_counter()
    try:
        for frames in read_capture(path, batch_size=batch_size):
            batch = engine.process(frames)
            features = engine.last_features
            summary.observe(batch, None if features is None else features.session)
            for sink in sinks:
                sink(batch)
            result.packets += len(batch)
            if bar is not None:
                bar.update(int(frames.offsets[-1]) + 16 * len(frames))
    except CaptureError as exc:
        result.error = str(exc)
    finally:
        if bar is not None:
            bar.close()
    result.seconds = time.perf_counter() - start
    return result
