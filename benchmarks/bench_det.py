"""DET throughput: streaming inference, offline inference and training, in packets/s.

Synthetic traffic: many short sessions (1-6 packets) and ~5 % long ones (50-400 packets),
interleaved in time, cut into batches of ``--batch`` packets. Streaming runs ``--threads``
session shards side by side; offline inference and training use ``--threads`` torch threads.
On a shared machine prefer the "per CPU-second" figures (and OMP_WAIT_POLICY=PASSIVE). Run:

    .venv/bin/python -m benchmarks.bench_det --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from jixiaoan.model.det import DET, DETConfig
from jixiaoan.model.det_stream import DETStream
from jixiaoan.model.det_synth import synthetic_stream
from jixiaoan.model.det_train import predict_proba, train_det


def best_rate(fn, n: int, repeats: int) -> str:
    """Best packets/s over ``repeats`` runs of ``fn`` (which handles ``n`` packets), by wall
    clock and per CPU-second (the latter is steadier on a shared machine)."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return f"{n / wall:,.0f} packets/s wall, {n / cpu:,.0f} packets per CPU-second"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sessions", type=int, default=8000, help="sessions in the stream")
    ap.add_argument("--batch", type=int, default=4096, help="packets per streaming batch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engine", default="numba", choices=["numba", "torch"])
    ap.add_argument("--train-sessions", type=int, default=1500)
    ap.add_argument("--batch-tokens", type=int, default=8192, help="training mini-batch")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DET(DETConfig(n_classes=3)).eval()
    batch, _ = synthetic_stream(args.sessions, seed=1)
    n = len(batch)
    parts = [batch.take(np.arange(i, min(i + args.batch, n))) for i in range(0, n, args.batch)]
    stream = DETStream(model, threads=args.threads, engine=args.engine)

    def run_stream() -> None:
        stream.reset()
        for part in parts:
            stream.predict_proba(part)

    print(
        f"torch {torch.__version__}, threads {args.threads}, {n} packets, "
        f"{len(np.unique(batch.session))} sessions, batches of {args.batch}"
    )
    run_stream()  # compile the numba kernel outside the timing
    print(f"streaming inference: {best_rate(run_stream, n, args.repeats)}")
    torch.set_num_threads(args.threads)  # DETStream runs one torch thread per shard
    offline = best_rate(lambda: predict_proba(model, batch), n, args.repeats)
    print(f"offline predict_proba: {offline}")

    train, labels = synthetic_stream(args.train_sessions, seed=2)
    c0 = time.process_time()
    hist = train_det(
        model, [train], [labels], None, args.epochs, 1e-3, 0, batch_tokens=args.batch_tokens
    )
    done = hist["packets"] * args.epochs
    print(
        f"training ({len(train)} packets x {args.epochs} epochs, batch_tokens "
        f"{args.batch_tokens}): {done / hist['seconds']:,.0f} packets/s wall, "
        f"{done / (time.process_time() - c0):,.0f} packets per CPU-second"
    )


if __name__ == "__main__":
    main()
