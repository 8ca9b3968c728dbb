"""Fused KitNET scoring (numba): normalisation, every group autoencoder and the output
autoencoder in one pass per packet, without the batched torch module's temporaries.

Same arithmetic as ``GroupAutoencoders.rmse`` followed by the output autoencoder (see
``kitnet.py``), in float32 as there; the weights come from :func:`pack_autoencoders`.
Scoring small live batches this way costs a fraction of the torch path (BENCHMARKS.md).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit


class PackedAutoencoders(NamedTuple):
    """Plain arrays of one padded, tied-weight autoencoder module."""

    index: np.ndarray  # int64 (G, width): input feature of each slot
    width: np.ndarray  # int64 (G,): used slots per group
    hidden: np.ndarray  # int64 (G,): used hidden units per group
    weight: np.ndarray  # float32 (G, width, hidden), masked
    hidden_bias: np.ndarray  # float32 (G, hidden)
    visible_bias: np.ndarray  # float32 (G, width)


def pack_autoencoders(module) -> PackedAutoencoders:
    """Arrays of a ``GroupAutoencoders`` module (torch tensors in, numpy out)."""
    in_mask = module.in_mask.numpy()
    hid_mask = module.hid_mask.numpy()
    weight = (module.weight.detach() * module.w_mask).numpy().astype(np.float32)
    return PackedAutoencoders(
        index=module.index.numpy().astype(np.int64),
        width=in_mask.sum(axis=1).astype(np.int64),
        hidden=hid_mask.sum(axis=1).astype(np.int64),
        weight=np.ascontiguousarray(weight),
        hidden_bias=module.hidden_bias.detach().numpy().astype(np.float32),
        visible_bias=module.visible_bias.detach().numpy().astype(np.float32),
    )


@njit(cache=True, nogil=True, fastmath=True)
def _group_rmse(x, g, index, width, hidden, weight, hb, vb, h):  # pragma: no cover - compiled
    """RMSE of autoencoder ``g`` on the normalised vector ``x``; ``h`` is scratch space.
    float32 throughout, as the torch modules (and ``expf`` is about twice as fast as ``exp``)."""
    w, k = width[g], hidden[g]
    one = np.float32(1.0)
    for j in range(k):
        a = hb[g, j]
        for i in range(w):
            a += x[index[g, i]] * weight[g, i, j]
        h[j] = one / (one + math.exp(-a))
    err = np.float32(0.0)
    for i in range(w):
        a = vb[g, i]
        for j in range(k):
            a += h[j] * weight[g, i, j]
        d = one / (one + math.exp(-a)) - x[index[g, i]]
        err += d * d
    return math.sqrt(err / np.float32(w))


@njit(cache=True, nogil=True)
def score_kernel(
    X, log_scale, norm_min, norm_span, clip, ens, outer, out_min, out_span
):  # pragma: no cover - compiled
    """KitNET score (n,) float32 of every row of ``X`` (n, F) float32.

    ``ens`` (the group autoencoders) and ``outer`` (the output autoencoder) are
    :class:`PackedAutoencoders` tuples; ``out_min`` / ``out_span`` normalise the group RMSEs.
    Serial on purpose: the DET beside it already uses torch's threads, and a parallel numba
    region would bring a second OpenMP runtime into the process."""
    e_index, e_width, e_hidden, e_weight, e_hb, e_vb = ens
    o_index, o_width, o_hidden, o_weight, o_hb, o_vb = outer
    f = X.shape[1]
    groups = e_index.shape[0]
    x = np.empty(f, np.float32)
    r = np.empty(groups, np.float32)
    h = np.empty(max(e_weight.shape[2], o_weight.shape[2]), np.float32)
    result = np.empty(X.shape[0], np.float32)
    for row in range(X.shape[0]):
        for c in range(f):
            v = np.float32(X[row, c])
            if math.isnan(v):
                v = np.float32(0.0)
            elif math.isinf(v):
                v = np.float32(3e38) if v > 0 else np.float32(-3e38)
            if log_scale:
                v = np.float32(math.copysign(math.log1p(abs(v)), v))
            z = np.float32((v - norm_min[c]) / norm_span[c])
            x[c] = min(max(z, -clip), clip)
        for g in range(groups):
            rm = np.float32(_group_rmse(x, g, e_index, e_width, e_hidden, e_weight, e_hb, e_vb, h))
            z = np.float32((rm - out_min[g]) / out_span[g])
            r[g] = min(max(z, -clip), clip)
        result[row] = _group_rmse(r, 0, o_index, o_width, o_hidden, o_weight, o_hb, o_vb, h)
    return result
