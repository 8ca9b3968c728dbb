"""KitNET scoring as a few dense matrix products (the path for batches of more than a hundred
packets or so).

The group autoencoders partition the features, so all of them together are one tied-weight
autoencoder whose weight matrix is block-diagonal: inputs permuted group after group, one
``addmm`` + sigmoid to the hidden units of every group, one back, and a segment matrix that
sums each group's squared errors (divided by its size). It does ~10x the multiply-adds of the
groups themselves but in two large products, which beats the padded batched modules of
``GroupAutoencoders`` (gathers, masks, per-group products) 2-3x (BENCHMARKS.md, session 5).
Same float32 arithmetic as ``GroupAutoencoders.rmse``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from jixiaoan.model.kitnet_kernels import PackedAutoencoders


class DenseAutoencoders(NamedTuple):
    """One module's autoencoders as block-diagonal dense tensors."""

    perm: torch.Tensor  # int64 (F,): input feature of each row of ``weight``, group by group
    weight: torch.Tensor  # float32 (F, H), block-diagonal
    hidden_bias: torch.Tensor  # float32 (H,)
    visible_bias: torch.Tensor  # float32 (F,)
    segment: torch.Tensor  # float32 (F, G): 1 / group size where the row belongs to the group


def dense_autoencoders(packed: PackedAutoencoders) -> DenseAutoencoders:
    """The block-diagonal form of a packed module."""
    widths, hiddens = packed.width, packed.hidden
    n_groups, n_in, n_hidden = len(widths), int(widths.sum()), int(hiddens.sum())
    weight = np.zeros((n_in, n_hidden), np.float32)
    hidden_bias = np.zeros(n_hidden, np.float32)
    visible_bias = np.zeros(n_in, np.float32)
    segment = np.zeros((n_in, n_groups), np.float32)
    perm = np.zeros(n_in, np.int64)
    row = col = 0
    for g in range(n_groups):
        w, h = int(widths[g]), int(hiddens[g])
        perm[row : row + w] = packed.index[g, :w]
        weight[row : row + w, col : col + h] = packed.weight[g, :w, :h]
        hidden_bias[col : col + h] = packed.hidden_bias[g, :h]
        visible_bias[row : row + w] = packed.visible_bias[g, :w]
        segment[row : row + w, g] = 1.0 / w
        row, col = row + w, col + h
    return DenseAutoencoders(*(torch.from_numpy(a) for a in (
        perm, weight, hidden_bias, visible_bias, segment)))  # fmt: skip


def dense_rmse(x: torch.Tensor, dense: DenseAutoencoders) -> torch.Tensor:
    """Per-row, per-group RMSE (n, G) of normalised inputs ``x`` (n, features)."""
    xp = x.index_select(1, dense.perm)
    h = torch.sigmoid(torch.addmm(dense.hidden_bias, xp, dense.weight))
    z = torch.sigmoid(torch.addmm(dense.visible_bias, h, dense.weight.t()))
    return torch.sqrt((z - xp).square_() @ dense.segment)
