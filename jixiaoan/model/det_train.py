"""Training and offline (whole-file) inference for DET on flat session-ordered tokens.

Packets are grouped by session (arrival order kept) and cut into pieces of at most
``piece_len`` loss-carrying packets. Each piece is preceded by up to ``cfg.context`` earlier
packets of its session that carry no loss, so every loss packet sees exactly the receptive field
it has in streaming inference. Pieces are shuffled (seeded) and packed into mini-batches of about
``batch_tokens`` tokens; no padding is needed because attention runs over a neighbour index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as nnf

from jixiaoan.features.batch import PAD_INDEX, FeatureBatch
from jixiaoan.model.det import DET, session_order

PIECE_LEN = 64


@dataclass
class SessionTokens:
    """Packets of several files in session-major order, ready to be cut into pieces."""

    byte_idx: np.ndarray  # uint16 (n, Nb)
    freq: np.ndarray  # float32 (n, K)
    pos: np.ndarray  # int32 (n,)
    rank: np.ndarray  # int64 (n,): index of the packet among its session's packets
    source: np.ndarray  # int64 (n,): row in the concatenated input (file after file)


def make_sequences(batches: list[FeatureBatch]) -> SessionTokens:
    """Concatenate files and lay their packets out session by session (sessions are per file)."""
    sizes = [len(b) for b in batches]
    session = np.concatenate([b.session.astype(np.int64) for b in batches])
    # a (file, session) key: rank sessions inside each file, then offset by file
    key = np.zeros(len(session), dtype=np.int64)
    offset, start = 0, 0
    for size in sizes:
        _, inv = np.unique(session[start : start + size], return_inverse=True)
        key[start : start + size] = inv + offset
        offset += int(inv.max()) + 1 if size else 0
        start += size
    order, rank, _ = session_order(key)
    cat = FeatureBatch.concat(batches) if len(batches) > 1 else batches[0]
    return SessionTokens(
        byte_idx=cat.byte_idx[order],
        freq=cat.freq[order].astype(np.float32),
        pos=cat.pos[order],
        rank=rank,
        source=order,
    )


def _ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(s, e)`` for each pair, and each element's index inside its range."""
    lengths = ends - starts
    total = int(lengths.sum())
    first = np.cumsum(lengths) - lengths
    inner = np.arange(total) - np.repeat(first, lengths)
    return np.repeat(starts, lengths) + inner, inner


def _pieces(rank: np.ndarray, piece_len: int, context: int) -> tuple[np.ndarray, ...]:
    """(context start, loss start, end) of each piece, as indices into session-major tokens."""
    loss_start = np.flatnonzero(rank % piece_len == 0)
    ends = np.append(loss_start[1:], len(rank))
    # a piece never spans two sessions: a new session starts at rank 0, itself a piece start
    ctx_start = loss_start - np.minimum(rank[loss_start], context)
    return ctx_start, loss_start, ends


def _tensors(tok: SessionTokens, idx: np.ndarray, local_rank: np.ndarray,
             byte_dropout: float = 0.0, rng: np.random.Generator | None = None):
    byte_idx = tok.byte_idx[idx].astype(np.int64)
    if byte_dropout > 0 and rng is not None:
        drop = (rng.random(byte_idx.shape, dtype=np.float32) < byte_dropout)
        byte_idx[drop & (byte_idx != PAD_INDEX)] = 0
    return (
        torch.from_numpy(byte_idx),
        torch.from_numpy(tok.freq[idx]),
        torch.from_numpy(tok.pos[idx].astype(np.int64)),
        torch.from_numpy(local_rank.astype(np.int64)),
    )


def train_det(
    model: DET,
    batches: list[FeatureBatch],
    targets: list[np.ndarray],
    weights: list[np.ndarray] | None,
    epochs: int,
    lr: float,
    seed: int,
    batch_tokens: int = 4096,
    progress: bool = False,
    piece_len: int = PIECE_LEN,
) -> dict:
    """Train ``model`` in place on packets with class targets (-1 = no loss, context only).

    ``weights`` optionally weights each packet's loss. Fits the frequency normalisation on the
    first call. Deterministic for a given seed. Returns ``{"loss": [mean loss per epoch],
    "packets": loss packets per epoch, "seconds": training time}``.
    """
    cfg = model.cfg
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = make_sequences(batches)
    y_all = np.concatenate([np.asarray(t, dtype=np.int64) for t in targets])[tok.source]
    if weights is None:
        w_all = np.ones(len(y_all), dtype=np.float32)
    else:
        w_all = np.concatenate([np.asarray(w, dtype=np.float32) for w in weights])[tok.source]
    if not bool(model.freq_fitted):
        model.fit_freq_scale(tok.freq[y_all >= 0] if (y_all >= 0).any() else tok.freq)
    ctx_start, loss_start, ends = _pieces(tok.rank, piece_len, cfg.context)
    trained = (y_all >= 0) & (w_all > 0)
    has_loss = np.zeros(len(loss_start), dtype=bool)
    if len(loss_start):
        has_loss = np.add.reduceat(trained, loss_start) > 0
    ctx_start, loss_start, ends = ctx_start[has_loss], loss_start[has_loss], ends[has_loss]
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        history = _epochs(
            model,
            tok,
            y_all,
            w_all,
            (ctx_start, loss_start, ends),
            epochs,
            lr,
            rng,
            batch_tokens,
            progress,
        )
    finally:
        torch.use_deterministic_algorithms(deterministic)
    n_loss = int(((y_all >= 0) & (w_all > 0)).sum())
    return {"loss": history, "packets": n_loss, "seconds": time.perf_counter() - t0}


def _epochs(model, tok, y_all, w_all, pieces, epochs, lr, rng, batch_tokens, progress):
    ctx_start, loss_start, ends = pieces
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    history: list[float] = []
    model.train()
    for epoch in range(epochs):
        perm = rng.permutation(len(loss_start))
        sizes = (ends - ctx_start)[perm]
        group = np.cumsum(sizes) // max(batch_tokens, 1)
        cuts = np.flatnonzero(np.diff(group)) + 1
        total, count = 0.0, 0
        for chunk in np.split(perm, cuts):
            if len(chunk) == 0:
                continue
            idx, local = _ranges(ctx_start[chunk], ends[chunk])
            ctx_len = (loss_start - ctx_start)[chunk]
            is_loss = local >= np.repeat(ctx_len, ends[chunk] - ctx_start[chunk])
            y = y_all[idx]
            w = w_all[idx] * is_loss * (y >= 0)
            if w.sum() <= 0:
                continue
            logits = model(*_tensors(tok, idx, local, model.cfg.byte_dropout, rng))
            sel = torch.from_numpy(np.flatnonzero(w > 0))
            ce = nnf.cross_entropy(logits[sel], torch.from_numpy(y[sel.numpy()]), reduction="none")
            wt = torch.from_numpy(w[sel.numpy()])
            loss = (ce * wt).sum() / wt.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(sel)
            count += len(sel)
        history.append(total / max(count, 1))
        if progress:
            print(f"DET epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}", flush=True)
    model.eval()
    return history


@torch.inference_mode()
def predict_proba(model: DET, batch: FeatureBatch, chunk_tokens: int = 32768) -> np.ndarray:
    """Class probabilities (n, C) float32 for a whole file, each packet seeing its session's
    earlier packets (same result as streaming the file through ``DETStream``)."""
    model.eval()
    n = len(batch)
    out = np.zeros((n, model.cfg.n_classes), dtype=np.float32)
    if n == 0:
        return out
    tok = make_sequences([batch])
    table = model.lookup_table()
    ctx = model.cfg.context
    for start in range(0, n, chunk_tokens):
        end = min(start + chunk_tokens, n)
        lo = max(0, start - ctx)
        idx = np.arange(lo, end)
        local = np.minimum(tok.rank[idx], idx - lo)
        logits = model(*_tensors(tok, idx, local), table=table)[start - lo :]
        out[tok.source[start:end]] = torch.softmax(logits, dim=-1).numpy()
    return out
