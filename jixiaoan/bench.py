"""``jixiaoan bench``: packets per second of every pipeline stage on one capture.

Prints one line per stage. Figures depend on the machine; record them in BENCHMARKS.md with
the command that produced them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jixiaoan.capture.batch import CaptureError, FrameBatch, HeaderBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.pcapwriter import PcapWriter
from jixiaoan.features.batch import FeatureConfig

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (ROOT.parent / "shared" / "datasets", ROOT / "tests" / "data", ROOT / "assets" / "demo")
BATCH = 16384


def build_capture(path: str, n_packets: int) -> int:
    """Write a pcap of about ``n_packets`` real Ethernet packets, by concatenating the captures
    found in the corpus, the test data or the demo (repeated as needed), with increasing time."""
    files = []
    for folder in SOURCES:
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    if not files:
        raise RuntimeError("no capture found to build the benchmark capture from")
    written, offset = 0, 1.7e9  # times start in 2023, increasing file after file
    with PcapWriter(path, linktype=1) as out:
        while written < n_packets:
            before = written
            for f in files:
                try:
                    for frames in read_capture(str(f), batch_size=BATCH):
                        keep = frames.linktype == 1
                        if not keep.any():
                            break
                        frames = frames.take(keep)
                        rel = np.nan_to_num(frames.ts - np.nanmin(frames.ts))
                        frames.ts = offset + np.minimum(rel, 60.0)  # no hour-long gaps
                        offset = float(frames.ts.max()) + 0.001
                        out.write(frames)
                        written += len(frames)
                except CaptureError:  # damaged corpus files add the packets before the damage
                    continue
                if written >= n_packets:
                    break
            if written == before:
                raise RuntimeError("no Ethernet capture among the sources")
    return written


def _timed(
    label: str,
    n: int,
    fn: Callable[[], object],
    repeats: int = 1,
    setup: Callable[[], object] | None = None,
) -> float:
    """Time ``fn`` (``setup`` before each run, untimed); print and return the best rate of
    ``repeats`` runs, with the median beside it when there are several."""
    times = []
    for _ in range(max(1, repeats)):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    secs = min(times)
    rate = n / secs if secs > 0 else float("inf")
    extra = ""
    if len(times) > 1:
        median = float(np.median(times))
        extra = f"   (best of {len(times)}; median {n / median:,.0f} pkt/s)"
    print(f"{label:<34} {n:>9} pkts {secs:>8.3f} s {rate:>12,.0f} pkt/s{extra}", flush=True)
    return rate


def run_bench(args: argparse.Namespace) -> int:
    """Run the stage benchmarks selected by ``args`` and print the figures."""
    only = set(args.only.split(",")) if getattr(args, "only", None) else None
    tmp = tempfile.mkdtemp(prefix="jixiaoan-bench-")
    path = args.capture
    if not path:
        path = os.path.join(tmp, "bench.pcap")
        n = build_capture(path, args.packets)
        print(f"built {path}: {n} packets, {os.path.getsize(path) / 1e6:.1f} MB")

    def want(stage: str) -> bool:
        return only is None or stage in only

    batches: list[FrameBatch] = []
    n = sum(len(b) for b in read_capture(path, batch_size=BATCH))  # warm the page cache
    _timed(
        "read (pcap -> frame batches)",
        n,
        lambda: batches.extend(read_capture(path, batch_size=BATCH)),
    )
    headers: list[HeaderBatch] = []
    _timed(
        "parse (numpy header fields)", n, lambda: headers.extend(parse_headers(b) for b in batches)
    )
    cfg = FeatureConfig()
    if want("features"):
        _bench_features(batches, headers, cfg, n)
    if want("store"):
        _bench_store(batches, headers, n, tmp)
    if want("model"):
        _bench_model(args, batches, headers, n)
    if want("analyze"):
        _bench_analyze(args, path, n, tmp)
    return 0


def _bench_features(batches, headers, cfg: FeatureConfig, n: int) -> None:
    from jixiaoan.features.afterimage import AfterImage
    from jixiaoan.features.anonymize import anonymized_bytes
    from jixiaoan.features.frequency import WhisperFrequency
    from jixiaoan.features.sessions import SessionTracker

    tracker = SessionTracker(cfg)
    sessions: list[np.ndarray] = []
    _timed("sessions", n, lambda: sessions.extend(tracker.assign(h)[0] for h in headers))
    _timed(
        "anonymised byte encoding",
        n,
        lambda: [anonymized_bytes(b, h, cfg.n_bytes) for b, h in zip(batches, headers)],
    )
    freq = WhisperFrequency(cfg)
    _timed(
        "frequency (Whisper)", n, lambda: [freq.transform(h, s) for h, s in zip(headers, sessions)]
    )
    ai = AfterImage(cfg)
    _timed("AfterImage (100 features)", n, lambda: [ai.transform(h) for h in headers])


def _bench_store(batches, headers, n: int, tmp: str) -> None:
    from jixiaoan.engine.batch import ClassifiedBatch, Device
    from jixiaoan.storage.store import PacketStore

    store = PacketStore(os.path.join(tmp, "bench.db"), retention_rows=None, blocking=True)
    devices = [Device(mac="02:00:00:00:00:01", name="a"), Device(mac="02:00:00:00:00:02", name="b")]
    for d in devices:
        store.register_device(d)
    cbs = []
    for b, h in zip(batches, headers):
        m = len(h)
        dev = (np.arange(m) % 2).astype(np.int32)
        cbs.append(
            ClassifiedBatch(
                b,
                h,
                dev,
                np.full(m, -1, np.int32),
                np.zeros(m, np.int8),
                np.zeros(m, np.float32),
                np.full(m, -1, np.int16),
                (),
                None,
                devices,
            )
        )

    def write() -> None:
        for cb in cbs:
            store.submit(cb)
        store.flush()

    _timed("store (SQLite rows, 1 writer)", n, write)
    store.close()


def _bench_model(args, batches, headers, n: int) -> None:
    from jixiaoan.cli import load_detector
    from jixiaoan.features.extractor import FeatureExtractor

    detector = load_detector(getattr(args, "model", None))
    extractor = FeatureExtractor(getattr(detector, "feature_config", FeatureConfig()))
    feats = [extractor.transform(b, h) for b, h in zip(batches, headers)]
    detector.predict_many(feats[0])  # first call: compiled kernels, session caches
    _timed(
        f"model inference ({detector.name})",
        n,
        lambda: [detector.predict_many(f) for f in feats],
        repeats=getattr(args, "repeats", 1),
        setup=detector.reset,
    )


def _bench_analyze(args, path: str, n: int, tmp: str) -> None:
    from jixiaoan.cli import load_detector
    from jixiaoan.engine.batch import Device
    from jixiaoan.engine.offline import run_capture
    from jixiaoan.engine.pipeline import Engine
    from jixiaoan.storage.store import PacketStore

    detector = None
    try:
        detector = load_detector(getattr(args, "model", None))
    except Exception as exc:  # noqa: BLE001 - still measure the unclassified path
        print(f"(no model: {exc})")
    engine = Engine([Device(ip="192.168.1.1")], detector)
    stores: list[PacketStore] = []

    def fresh() -> None:  # every run starts from an empty database and a fresh stream
        if stores:
            stores[-1].close()
        path_db = os.path.join(tmp, f"analyze{len(stores)}.db")
        stores.append(PacketStore(path_db, retention_rows=None, blocking=True))
        engine.reset()

    def run() -> None:
        run_capture(path, engine, [stores[-1].submit])
        stores[-1].flush()

    _timed("analyze end to end (+store)", n, run, repeats=getattr(args, "repeats", 1),
           setup=fresh)
    stores[-1].close()
