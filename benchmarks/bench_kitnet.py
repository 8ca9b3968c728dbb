"""KitNET fit and score speed (packets/s) on synthetic AfterImage-shaped features, and on real
ones when a corpus feature cache exists.

    .venv/bin/python benchmarks/bench_kitnet.py [--n 400000] [--threads 0] [--cache DIR]

Synthetic rows: 100 features in 10 correlated blocks (2 latent factors each) plus noise; the
anomaly AUC is measured on 5,000 normal and 5,000 decorrelated rows. Real rows: the
``afterimage`` arrays of the ``.npz`` files in the cache (``jixiaoan.model.corpus``), with the
AUC of benign against malicious packets when the cache carries the truth.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from jixiaoan.model.kitnet import KitNET  # noqa: E402


def synthetic(n: int, seed: int, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    loadings = np.random.default_rng(0).normal(size=(10, 2, 10))
    z = rng.normal(size=(n, 10, 2)).astype(np.float32)
    X = np.einsum("nbk,bkf->nbf", z, loadings.astype(np.float32)).reshape(n, 100)
    X += rng.normal(scale=0.2 + noise, size=(n, 100)).astype(np.float32)
    return X.astype(np.float32)


def run(name: str, X: np.ndarray, probe: tuple[np.ndarray, np.ndarray] | None, args) -> None:
    settings = {"threads": args.threads}
    if args.lr:
        settings["lr"] = args.lr
    model = KitNET(seed=0, **settings)
    t0 = time.perf_counter()
    model.fit(X, epochs=args.epochs, batch_size=args.batch)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = model.score(X)
    score_s = time.perf_counter() - t0
    print(
        f"{name}: {len(X):,} x {X.shape[1]} | groups {len(model.groups)} "
        f"(sizes {sorted(len(g) for g in model.groups)}) | epochs {model.epochs_run} | "
        f"fit {fit_s:.1f} s = {len(X) / fit_s:,.0f} pkt/s | "
        f"score {score_s:.2f} s = {len(X) / score_s:,.0f} pkt/s"
    )
    if probe is not None:
        normal, anomalous = probe
        s0, s1 = model.score(normal), model.score(anomalous)
        y = np.r_[np.zeros(len(s0)), np.ones(len(s1))]
        print(f"  AUC normal vs anomalous: {roc_auc_score(y, np.r_[s0, s1]):.4f}")
    assert np.isfinite(scores).all()


def real_features(cache: str, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    files = sorted(glob.glob(os.path.join(cache, "*.npz")))
    xs, ys = [], []
    for path in files:
        with np.load(path, allow_pickle=False) as z:
            if "afterimage" not in z.files:
                continue
            xs.append(z["afterimage"].astype(np.float32))
            ys.append(z["malicious"].astype(bool) if "malicious" in z.files else np.zeros(0, bool))
    if not xs:
        return None
    X = np.concatenate(xs)
    y = np.concatenate(ys) if all(len(a) == len(b) for a, b in zip(xs, ys)) else None
    if len(X) > n:
        pick = np.sort(np.random.default_rng(0).choice(len(X), n, replace=False))
        X, y = X[pick], (y[pick] if y is not None else None)
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400_000, help="rows to fit and score")
    parser.add_argument("--epochs", type=int, default=None, help="default: KitNET's")
    parser.add_argument("--batch", type=int, default=None, help="default: KitNET's")
    parser.add_argument("--lr", type=float, default=None, help="default: KitNET's")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--cache", default=None, help="corpus feature cache folder")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads by default, "
        f"{os.cpu_count()} CPUs"
    )
    X = synthetic(args.n, 1)
    run("synthetic", X, (synthetic(5000, 2), synthetic(5000, 3, noise=0.5)), args)
    cache = args.cache
    if cache is None:
        from jixiaoan.model.corpus import default_cache_dir

        cache = str(default_cache_dir())
    got = real_features(cache, args.n) if os.path.isdir(cache) else None
    if got is None:
        print(f"real: no cached features in {cache}")
        return
    X, y = got
    run("real", X, None, args)
    if y is not None and y.any() and (~y).any():
        model = KitNET(seed=0, threads=args.threads).fit(X[~y], args.epochs, args.batch)
        s = model.score(X)
        print(f"  real, fitted on benign only: AUC benign vs malicious {roc_auc_score(y, s):.4f}")


if __name__ == "__main__":
    main()
