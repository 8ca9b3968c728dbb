"""DET throughput: streaming inference, offline inference and training, in packets/s.

Synthetic traffic: many short sessions (1-6 packets) and ~5 % long ones (50-400 packets),
interleaved in time, cut into batches of ``--batch`` packets. Run:

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


def best_rate(fn, n: int, repeats: int) -> float:
    """Best packets/s over ``repeats`` runs of ``fn`` (which handles ``n`` packets)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sessions", type=int, default=8000, help="sessions in the stream")
    ap.add_argument("--batch", type=int, default=4096, help="packets per streaming batch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engine", default="numba", choices=["numba", "torch"])
    ap.add_argument("--train-sessions", type=int, default=1500)
    ap.add_argument("--batch-tokens", type=int, default=4096, help="training mini-batch")
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
    print(f"streaming inference: {best_rate(run_stream, n, args.repeats):,.0f} packets/s")
    print(
        f"offline predict_proba: "
        f"{best_rate(lambda: predict_proba(model, batch), n, args.repeats):,.0f} packets/s"
    )

    train, labels = synthetic_stream(args.train_sessions, seed=2)
    hist = train_det(
        model, [train], [labels], None, epochs=1, lr=1e-3, seed=0, batch_tokens=args.batch_tokens
    )
    print(
        f"training ({len(train)} packets, batch_tokens {args.batch_tokens}): "
        f"{hist['packets'] / hist['seconds']:,.0f} packets/s per epoch"
    )


if __name__ == "__main__":
    main()
