"""Synthetic FeatureBatch streams for DET tests and benchmarks (no capture needed)."""

from __future__ import annotations

import numpy as np

from jixiaoan.features.batch import AFTERIMAGE_WIDTH, PAD_INDEX, FeatureBatch


def synthetic_stream(
    n_sessions: int,
    seed: int = 0,
    n_bytes: int = 64,
    n_freq: int = 9,
    long_share: float = 0.05,
    long_len: tuple[int, int] = (50, 400),
    n_classes: int = 3,
    first_session: int = 0,
) -> tuple[FeatureBatch, np.ndarray]:
    """Interleaved sessions (many of 1-6 packets, ``long_share`` long ones) with class labels.

    Class 0 is benign. Class 1 differs in a byte pattern (bytes 20-23 = DE AD BE EF); class 2
    only in timing (its frequency features are shifted). Returns the batch in capture order and
    the per-packet labels.
    """
    rng = np.random.default_rng(seed)
    is_long = rng.random(n_sessions) < long_share
    lengths = np.where(is_long, rng.integers(*long_len, n_sessions), rng.integers(1, 7, n_sessions))
    cls = rng.integers(0, n_classes, n_sessions)
    n = int(lengths.sum())
    sid = np.repeat(np.arange(n_sessions), lengths)
    first = np.cumsum(lengths) - lengths
    pos = np.arange(n) - np.repeat(first, lengths)
    start = rng.random(n_sessions) * 100.0
    t = np.repeat(start, lengths) + pos * rng.exponential(0.05, n)
    order = np.argsort(t, kind="stable")
    sid, pos, t = sid[order], pos[order], t[order]
    label = cls[sid].astype(np.int16)

    byte_idx = rng.integers(0, 256, (n, n_bytes)).astype(np.uint16)
    byte_idx[:, :4] = [0x45, 0x00, 0x00, 0x3C]
    plen = rng.integers(30, n_bytes + 1, n)
    byte_idx[np.arange(n_bytes)[None, :] >= plen[:, None]] = PAD_INDEX
    marked = label == 1
    byte_idx[np.ix_(np.flatnonzero(marked), np.arange(20, 24))] = [0xDE, 0xAD, 0xBE, 0xEF]
    freq = rng.normal(10.0, 2.0, (n, n_freq)).astype(np.float32)
    freq[label == 2] += 3.0
    batch = FeatureBatch(
        byte_idx=byte_idx,
        freq=freq,
        afterimage=np.zeros((n, AFTERIMAGE_WIDTH), dtype=np.float32),
        session=(sid + first_session).astype(np.int64),
        pos=pos.astype(np.int32),
        ts=t,
    )
    return batch, label
