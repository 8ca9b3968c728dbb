"""Packet store figures: writer rows/s, commit latency, read latency of the GUI queries.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_store.py [--packets 200000] [--batch 2000]

Rows are synthetic (random 64-1500 byte frames, 2 watched devices, 10 % of the packets between
the two devices so they are stored twice). Prints rows/s of the writer (wall and process CPU),
the capture-to-commit latency of a paced stream, and latest(..., 500) / counts / rates timings.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from jixiaoan.engine.batch import Device
from jixiaoan.storage.synthetic import synthetic_batch
from jixiaoan.storage.writer import PacketStore

DEVS = [
    Device(mac="aa:00:00:00:00:01", ip="192.168.1.10", name="camera"),
    Device(mac="aa:00:00:00:00:02", ip="192.168.1.11", name="plug"),
]


def make_batches(packets: int, batch: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(max(1, packets // batch)):
        src = rng.integers(0, 2, batch)
        dst = np.where(rng.random(batch) < 0.1, 1 - src, -1)
        out.append(synthetic_batch(batch, DEVS, 1e9 + k, rng, src=src, dst=dst, dt=1e-5))
    return out


def bench_throughput(path: Path, batches: list) -> PacketStore:
    store = PacketStore(path, retention_rows=None, queue_batches=len(batches) + 1)
    for d in DEVS:
        store.register_device(d)
    t0, c0 = time.perf_counter(), time.process_time()
    for b in batches:
        store.submit(b)
    store.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    c = store.counters()
    print(
        f"writer: {c.rows_stored} rows ({sum(len(b) for b in batches)} packets) in {wall:.2f} s"
        f" = {c.rows_stored / wall:,.0f} rows/s wall, {c.rows_stored / cpu:,.0f} rows/s per"
        f" CPU-second of the process; {c.commits} commits, dropped {c.batches_dropped}"
    )
    busiest = max(c.convert_cpu_s, c.write_cpu_s)
    print(
        f"thread CPU: converter {c.convert_cpu_s:.2f} s ({c.rows_stored / c.convert_cpu_s:,.0f}"
        f" rows/s), writer {c.write_cpu_s:.2f} s ({c.rows_stored / c.write_cpu_s:,.0f} rows/s);"
        f" with a core each the busier thread bounds the writer at"
        f" {c.rows_stored / busiest:,.0f} rows/s"
    )
    return store


def bench_latency(path: Path, rate: float, seconds: float, batch: int) -> None:
    lat: list[float] = []
    store = PacketStore(path, retention_rows=None, on_commit=lambda m, w, r: lat.append(w - m))
    rng = np.random.default_rng(1)
    proto = make_batches(batch * 20, batch, seed=2)
    interval = batch / rate
    t_end = time.time() + seconds
    k = 0
    while time.time() < t_end:
        b = proto[k % len(proto)]
        b.headers.ts[:] = time.time()  # stamped as captured now
        store.submit(b)
        k += 1
        time.sleep(max(0.0, interval - rng.random() * 1e-4))
    store.close()
    q = np.percentile(np.asarray(lat) * 1e3, [50, 90, 99, 100])
    print(
        f"latency at ~{rate:,.0f} pkt/s in batches of {batch}: newest packet capture -> commit"
        f" p50 {q[0]:.1f} ms, p90 {q[1]:.1f} ms, p99 {q[2]:.1f} ms, max {q[3]:.1f} ms"
        f" ({len(lat)} commits)"
    )


def timed(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3, float(np.max(times)) * 1e3


def bench_reads(store: PacketStore, extra: list) -> None:
    table = store.register_device(DEVS[0])
    r = store.reader
    total = r.counts(table)[0]
    now = r.latest(table, 1)[0].time
    for name, fn in [
        ("latest(table, 500)", lambda: r.latest(table, 500)),
        ("since(table, last-500)", lambda: r.since(table, total - 500)),
        ("counts(table)", lambda: r.counts(table)),
        ("rates(table, 10 s)", lambda: r.rates(table, 10.0, now=now)),
        ("timeline(table, last 60 s, 1 s bins)", lambda: r.timeline(table, now - 60, now, 1.0)),
    ]:
        med, worst = timed(fn, 50)
        print(f"read {name} on {total:,} rows: median {med:.2f} ms, max {worst:.2f} ms")
    # the same query from another thread while the writer is busy
    stop = threading.Event()
    samples: list[tuple[float, float]] = []

    def reader() -> None:
        while not stop.is_set():
            samples.append(timed(lambda: r.latest(table, 500), 1))

    t = threading.Thread(target=reader)
    t.start()
    for b in extra:
        store.submit(b)
    store.flush()
    stop.set()
    t.join()
    med = float(np.median([s[0] for s in samples]))
    worst = float(np.max([s[1] for s in samples]))
    print(f"read latest(table, 500) while writing: median {med:.2f} ms, max {worst:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=20_000.0, help="paced stream, packets/s")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--dir", type=Path, default=None, help="folder for the store files")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        batches = make_batches(args.packets, args.batch)
        store = bench_throughput(Path(tmp) / "throughput.db", batches)
        bench_reads(store, batches[: max(1, len(batches) // 4)])
        store.close()
        bench_latency(Path(tmp) / "latency.db", args.rate, args.seconds, max(1, args.batch // 4))


if __name__ == "__main__":
    main()
