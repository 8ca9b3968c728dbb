"""Numba kernels for DET: banded attention (streaming inference) and the embedding-bag gradient.

They release the GIL, so shards of a stream can run them side by side in threads.

The torch path gathers every token's neighbour keys/values into (n, window, d) tensors and
runs ~8 elementwise passes over them; this kernel reads the neighbours in place instead.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, fastmath=True, cache=True)
def band_attention(q, k, v, nbr, first, n_heads):  # pragma: no cover
    """Attention of each query over its neighbours.

    ``q``: float32 (n, d), queries already scaled; ``k``, ``v``: float32 (m, d), the key/value
    pool; ``nbr``: int64 (n, W), pool rows of each token's neighbours (oldest first, itself
    last); ``first``: int64 (n,), leading entries of ``nbr`` that are not valid (the session
    has fewer earlier packets). Returns float32 (n, d).
    """
    n, d = q.shape
    w = nbr.shape[1]
    dh = d // n_heads
    out = np.zeros((n, d), dtype=np.float32)
    scores = np.empty((w, n_heads), dtype=np.float32)
    for i in range(n):
        j0 = first[i]
        for j in range(j0, w):
            r = nbr[i, j]
            for h in range(n_heads):
                acc = np.float32(0.0)
                for c in range(dh):
                    acc += q[i, h * dh + c] * k[r, h * dh + c]
                scores[j, h] = acc
        for h in range(n_heads):
            best = scores[w - 1, h]
            for j in range(j0, w - 1):
                best = max(best, scores[j, h])
            total = np.float32(0.0)
            for j in range(j0, w):
                e = np.exp(scores[j, h] - best)
                scores[j, h] = e
                total += e
            inv = np.float32(1.0) / total
            for j in range(j0, w):
                scores[j, h] *= inv
        for j in range(j0, w):
            r = nbr[i, j]
            for h in range(n_heads):
                p = scores[j, h]
                for c in range(dh):
                    out[i, h * dh + c] += p * v[r, h * dh + c]
    return out


@numba.njit(nogil=True, fastmath=True, cache=True)
def bag_sum_backward(rows, grad, n_rows):  # pragma: no cover
    """Gradient of a sum embedding bag: ``out[rows[i, p]] += grad[i]`` for all ``i, p``.

    ``rows``: int64 (n, Nb) table rows; ``grad``: float32 (n, d). Serial, so deterministic.
    """
    n, nb = rows.shape
    d = grad.shape[1]
    out = np.zeros((n_rows, d), dtype=np.float32)
    for i in range(n):
        for p in range(nb):
            r = rows[i, p]
            for c in range(d):
                out[r, c] += grad[i, c]
    return out
