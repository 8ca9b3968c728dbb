"""Throughput of the alert stage (RateTracker.observe + AlertMonitor.evaluate) on synthetic
classified batches. Run: ``python -m jixiaoan.alerts.bench`` (prints packets per second)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from jixiaoan.alerts.policy import AlertMonitor, AlertPolicy
from jixiaoan.alerts.rates import RateTracker
from jixiaoan.alerts.scripted import scripted_batch
from jixiaoan.engine.batch import ClassifiedBatch


def synthetic_batches(
    n_batches: int, batch_size: int, n_devices: int, bad_share: float, n_peers: int, seed: int = 0
) -> list[ClassifiedBatch]:
    """Batches spread over ``n_batches / 10`` seconds, random devices, verdicts and peers."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_batches):
        n = batch_size
        ts = 1_000.0 + 0.1 * i + np.sort(rng.uniform(0, 0.1, n))
        src, dst = rng.integers(-1, n_devices, n), rng.integers(-1, n_devices, n)
        bad = (rng.random(n) < bad_share).astype(np.int8)
        attack = np.where(bad == 1, rng.integers(0, 5, n), -1)
        peer = rng.integers(0, n_peers, n)
        ips = [f"10.{p >> 16 & 255}.{p >> 8 & 255}.{p & 255}" for p in peer]
        names = tuple("abcde")
        out.append(scripted_batch(ts, src, dst, bad, attack, names, src_ip=ips, dst_ip=ips))
    return out


def measure(batches: list[ClassifiedBatch], n_devices: int) -> tuple[float, float]:
    """Packets per second of feed (observe + evaluate) over ``batches``: per wall-clock second
    and per CPU second of this thread (the latter is steadier on a shared machine)."""
    monitor = AlertMonitor(RateTracker(n_devices, 10.0), AlertPolicy(cooldown_s=0))
    wall, cpu = time.perf_counter(), time.thread_time()
    for b in batches:
        monitor.feed(b)
    n = sum(len(b) for b in batches)
    return n / (time.perf_counter() - wall), n / (time.thread_time() - cpu)


def main(argv: list[str] | None = None) -> None:
    """Print the alert stage's throughput for a normal and a flood traffic mix."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--devices", type=int, default=20)
    args = ap.parse_args(argv)
    for label, bad_share, n_peers in (
        ("mixed: 30% malicious, 50 peers", 0.3, 50),
        ("flood: 100% malicious, spoofed peers", 1.0, 1 << 24),
    ):
        batches = synthetic_batches(args.batches, args.batch_size, args.devices, bad_share, n_peers)
        wall, cpu = measure(batches, args.devices)
        print(
            f"alerts feed, {label}, batch {args.batch_size}: "
            f"{wall:,.0f} pkt/s wall, {cpu:,.0f} pkt/s per CPU second"
        )


if __name__ == "__main__":
    main()
