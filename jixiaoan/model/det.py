"""DET, ESeT's dual-feature encoded transformer (ESET.md section 3), as a causal banded model.

A packet is one token. Token ``i`` of a session attends to itself and the ``window - 1``
packets of its session before it (banded causal attention), so a token's layer outputs never
change once computed: streaming inference caches each session's recent keys/values per layer
(see ``det_stream``), and offline/training code runs the same layers on flat token arrays laid
out session by session, where a token's window is a strided view of the rows before it: no
padding of sessions to a common length, no gathers.

Token = byte embedding (table ``E`` then a linear projection of the flattened ``Nb x Ne``
matrix, or the equivalent per-position lookup table) + positional embedding of the packet's
position in its session (clipped) + ``alpha * g(W_FD)``, the frequency-domain weight
``W_FD = (norm(F) * mask) . V`` fused by a weighted residual, ``g(w) = tanh(w * a + b)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf

from jixiaoan.features.batch import PAD_INDEX
from jixiaoan.model.det_kernels import bag_sum_backward

N_BYTE_VALUES = PAD_INDEX + 1  # 256 byte values + padding


@dataclass
class DETConfig:
    """DET hyper-parameters; defaults follow ESET.md."""

    n_bytes: int = 64  # Nb
    n_embed: int = 16  # Ne
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    window: int = 8  # Np: a token sees itself and window - 1 earlier packets of its session
    d_ff: int = 128
    dropout: float = 0.1
    n_freq: int = 9  # K
    n_classes: int = 2
    freq_mask: tuple[float, ...] | None = None  # 0/1 per frequency bin; None = all ones
    max_pos: int = 32  # positions >= max_pos share the last positional embedding
    byte_dropout: float = 0.0  # training only: share of real bytes replaced by 0x00
    freq_width: int = 1  # H: frequency weights per packet (ESET.md's W_FD is H = 1)

    @property
    def context(self) -> int:
        """Earlier packets of a session that can influence a token's output."""
        return self.n_layers * (self.window - 1)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        d = asdict(self)
        if d["freq_mask"] is not None:
            d["freq_mask"] = list(d["freq_mask"])
        return d

    @classmethod
    def from_dict(cls, data: dict) -> DETConfig:
        """Inverse of to_dict; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        if kw.get("freq_mask") is not None:
            kw["freq_mask"] = tuple(float(x) for x in kw["freq_mask"])
        return cls(**kw)


class _TableBag(torch.autograd.Function):
    """Sum embedding bag whose backward is a serial numba kernel (deterministic and ~10x
    faster on CPU than torch's deterministic embedding-bag backward)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.n_rows = len(table)
        return nnf.embedding_bag(rows, table, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (rows,) = ctx.saved_tensors
        g = grad.detach().float().contiguous().numpy()
        return None, torch.from_numpy(bag_sum_backward(rows.numpy(), g, ctx.n_rows))


class BandLayer(nn.Module):
    """Post-norm transformer layer whose attention runs over gathered neighbour keys/values."""

    def __init__(self, cfg: DETConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm1 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, cfg.d_ff)
        self.ff2 = nn.Linear(cfg.d_ff, d)
        self.norm2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (scaled), keys and values of tokens ``x`` (n, d)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        d_head = x.shape[-1] // self.n_heads
        return q * (1.0 / math.sqrt(d_head)), k, v

    def attend(
        self, q: torch.Tensor, k_win: torch.Tensor, v_win: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Attention of each query (n, d) over its window of keys/values (n, h, d/h, W), any
        strides; ``valid`` (n, W) bool marks the window entries that exist."""
        n, d = q.shape
        h = self.n_heads
        scores = (q.view(n, h, d // h, 1) * k_win).sum(2)  # (n, h, W)
        scores = scores.masked_fill(~valid.unsqueeze(1), float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        return (attn.unsqueeze(2) * v_win).sum(-1).reshape(n, d)

    def attend_shifted(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """``attend`` for tokens laid out session by session: window entry ``j`` of token ``i``
        is row ``i - (W - 1) + j``, so each entry is a contiguous shifted slice (no gather)."""
        n, d = q.shape
        w, h = valid.shape[1], self.n_heads
        pad = q.new_zeros(w - 1, d)
        kp, vp = torch.cat([pad, k]), torch.cat([pad, v])
        qh = q.view(n, h, d // h)
        scores = torch.stack([(qh * kp[j : j + n].view(n, h, -1)).sum(-1) for j in range(w)], -1)
        attn = torch.softmax(scores.masked_fill(~valid.unsqueeze(1), float("-inf")), dim=-1)
        out = attn[..., w - 1 :] * v.view(n, h, -1)
        for j in range(w - 1):
            out = out + attn[..., j : j + 1] * vp[j : j + n].view(n, h, -1)
        return out.reshape(n, d)

    def finish(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Output projection, residual + norm, feed-forward, residual + norm."""
        x = self.norm1(x + self.drop(self.out(a)))
        return self.norm2(x + self.drop(self.ff2(nnf.relu(self.ff1(x)))))


class DET(nn.Module):
    """Dual-feature encoded transformer over flat packet tokens (see module docstring)."""

    def __init__(self, cfg: DETConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.byte_table = nn.Parameter(torch.randn(N_BYTE_VALUES, cfg.n_embed))
        self.byte_proj = nn.Linear(cfg.n_bytes * cfg.n_embed, d)
        self.pos_embed = nn.Parameter(torch.randn(cfg.max_pos, d) * 0.02)
        if cfg.freq_width < 1:
            raise ValueError(f"freq_width must be >= 1, got {cfg.freq_width}")
        v_shape = (cfg.n_freq,) if cfg.freq_width == 1 else (cfg.freq_width, cfg.n_freq)
        a_shape = (d,) if cfg.freq_width == 1 else (cfg.freq_width, d)
        self.freq_weight = nn.Parameter(torch.randn(v_shape) / math.sqrt(cfg.n_freq))
        self.freq_a = nn.Parameter(torch.randn(a_shape) * 0.5 / math.sqrt(cfg.freq_width))
        self.freq_b = nn.Parameter(torch.zeros(d))
        self.alpha = nn.Parameter(torch.tensor(1.0))
        mask = cfg.freq_mask if cfg.freq_mask is not None else (1.0,) * cfg.n_freq
        if len(mask) != cfg.n_freq:
            raise ValueError(f"freq_mask has {len(mask)} bins, n_freq is {cfg.n_freq}")
        self.register_buffer("freq_mask", torch.tensor(mask, dtype=torch.float32))
        self.register_buffer("freq_mean", torch.zeros(cfg.n_freq))
        self.register_buffer("freq_scale", torch.ones(cfg.n_freq))
        self.register_buffer("freq_fitted", torch.tensor(False))
        self.layers = nn.ModuleList(BandLayer(cfg) for _ in range(cfg.n_layers))
        self.head = nn.Linear(d, cfg.n_classes)

    # ----- input encoding -------------------------------------------------------------------

    def fit_freq_scale(self, freq: np.ndarray) -> None:
        """Fix the frequency normalisation (per-bin mean and std) from training features."""
        f = np.nan_to_num(np.asarray(freq, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        std = f.std(axis=0) if len(f) else np.ones(self.cfg.n_freq)
        self.freq_mean.copy_(torch.from_numpy(f.mean(axis=0) if len(f) else std * 0))
        self.freq_scale.copy_(torch.from_numpy(1.0 / np.maximum(std, 1e-3)))
        self.freq_fitted.fill_(True)

    def embed_bytes(self, byte_idx: torch.Tensor) -> torch.Tensor:
        """Plain form: table ``E`` then projection of the flattened ``Nb x Ne`` matrix."""
        e = nnf.embedding(byte_idx.long(), self.byte_table)  # (n, Nb, Ne)
        return self.byte_proj(e.reshape(len(byte_idx), -1))

    def lookup_table(self) -> torch.Tensor:
        """``T[p, b] = E[b] @ W_p^T``, flattened to (Nb * 257, d): the projection folded in."""
        cfg = self.cfg
        w = self.byte_proj.weight.view(cfg.d_model, cfg.n_bytes, cfg.n_embed)
        return torch.einsum("be,dpe->pbd", self.byte_table, w).reshape(-1, cfg.d_model)

    def _bag(self, byte_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(self.cfg.n_bytes, dtype=torch.long) * N_BYTE_VALUES
        return _TableBag.apply(byte_idx.long() + offsets, table)

    def embed_bytes_table(self, byte_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Table form of ``embed_bytes``: sum over positions of ``T[p, byte]`` (embedding bag)."""
        return self._bag(byte_idx, table) + self.byte_proj.bias

    def freq_residual(self, freq: torch.Tensor) -> torch.Tensor:
        """``g(W_FD) = tanh(W_FD a + b)`` (n, d), ``W_FD = (norm(F) * mask) V^T``: one weight
        per packet (``a`` a vector), or ``freq_width`` of them (``V`` and ``a`` matrices)."""
        f = torch.nan_to_num(freq.float(), nan=0.0, posinf=0.0, neginf=0.0)
        v_eff = self.freq_scale * self.freq_mask * self.freq_weight  # normalisation folded in
        if self.cfg.freq_width == 1:
            w_fd = (f @ v_eff - self.freq_mean @ v_eff).unsqueeze(-1)  # (n, 1)
            return torch.tanh(torch.addcmul(self.freq_b, w_fd, self.freq_a))
        w_fd = f @ v_eff.T - self.freq_mean @ v_eff.T  # (n, H)
        return torch.tanh(torch.addmm(self.freq_b, w_fd, self.freq_a))

    def encode(
        self, byte_idx: torch.Tensor, freq: torch.Tensor, pos: torch.Tensor, table: torch.Tensor
    ) -> torch.Tensor:
        """Input tokens: byte embedding + positional embedding + ``alpha * g(W_FD)``."""
        pos_bias = self.pos_embed + self.byte_proj.bias  # (max_pos, d), bias folded in
        p = pos_bias.index_select(0, pos.long().clamp(0, self.cfg.max_pos - 1))
        return torch.addcmul(self._bag(byte_idx, table) + p, self.freq_residual(freq), self.alpha)

    # ----- encoder over flat tokens ---------------------------------------------------------

    def forward(
        self,
        byte_idx: torch.Tensor,
        freq: torch.Tensor,
        pos: torch.Tensor,
        context: torch.Tensor,
        table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Class logits (n, C) of flat tokens laid out session by session, in arrival order.

        ``context`` (n,) long: how many tokens right before token ``i`` belong to its session
        (its rank in the session within this array; only ``window - 1`` of them are used).
        ``table``: a precomputed ``lookup_table()``; training uses it too (same result as the
        plain embedding, far cheaper). Default: computed from the parameters.
        """
        if table is None:
            table = self.lookup_table()
        x = self.encode(byte_idx, freq, pos, table)
        w = self.cfg.window
        offs = torch.arange(-(w - 1), 1)
        valid = context.unsqueeze(1) + offs >= 0  # (n, W)
        for layer in self.layers:
            q, k, v = layer.project(x)
            x = layer.finish(x, layer.attend_shifted(q, k, v, valid))
        return self.head(x)


def session_order(session: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group packets by session, keeping arrival order inside each session.

    Returns ``order`` (packets sorted by session, stable), ``rank`` (each sorted packet's index
    among its session's packets here) and ``starts`` (sorted index of each group's first packet).
    """
    order = np.argsort(session, kind="stable")
    s = session[order]
    n = len(s)
    new = np.ones(n, dtype=bool)
    new[1:] = s[1:] != s[:-1]
    starts = np.flatnonzero(new)
    group_start = np.repeat(starts, np.diff(np.append(starts, n)))
    rank = np.arange(n) - group_start
    return order, rank, starts
