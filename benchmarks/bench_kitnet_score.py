"""KitNET scoring: fused numba kernel, block-diagonal dense form and batched torch modules.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_kitnet_score.py [--model models/default]

``KitNET.score`` takes the kernel up to ``KERNEL_MAX_ROWS`` rows and the dense form above.
Rows are AfterImage-like features (non-negative, mixed scales); all paths score the same
batches, interleaved, best of three rounds per batch size.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jixiaoan.model.eset import ESeT


def best_us_per_row(fn, x: np.ndarray, rounds: int = 3) -> float:
    """Best microseconds per row over ``rounds`` of ~50k rows each."""
    fn(x)
    reps = max(1, 50_000 // len(x))
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fn(x)
        best = min(best, (time.perf_counter() - t) / reps / len(x) * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/default")
    args = ap.parse_args()
    kit = ESeT.load(args.model).kitnet
    rng = np.random.default_rng(0)
    scale = rng.choice([1.0, 100.0, 1e4], size=kit.n_features).astype(np.float32)
    X = (np.abs(rng.normal(0, 1, (16384, kit.n_features))) * scale).astype(np.float32)
    print(f"{len(kit.groups)} group autoencoders over {kit.n_features} features")
    print("| batch | fused kernel µs/pkt | dense µs/pkt | torch µs/pkt | score() pkt/s |")
    print("|---|---|---|---|---|")
    for n in (50, 128, 256, 512, 2048, 16384):
        x = X[:n]
        fused = best_us_per_row(kit.score_fused, x)
        dense = best_us_per_row(kit.score_dense, x)
        torch_path = best_us_per_row(kit.score_torch, x)
        chosen = best_us_per_row(kit.score, x)
        print(f"| {n} | {fused:.2f} | {dense:.2f} | {torch_path:.2f} | {1e6 / chosen:,.0f} |")


if __name__ == "__main__":
    main()
