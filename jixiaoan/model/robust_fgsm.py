"""FGSM-style attack on DET's frequency-domain features (ESET.md section 7, robustness).

For each malicious packet the attack moves every frequency feature ``FeatureBatch.freq[i, k]``
by ``eps * |freq[i, k]|`` (``mode="relative"``, the default: a relative budget per value) or by
``eps * std_k`` (``mode="range"``: ``std_k`` is the per-bin spread DET normalises by, fitted on
training features) in the sign of the gradient of the loss of the true class,
``L = -log P(malicious) = -log(1 - P(benign))``, summed over the malicious packets. Gradients
are taken through the real DET in eval mode (no dropout) with autograd, over the whole file laid
out session by session exactly as ``det_train.predict_proba`` does (chunks with their context;
the loss of each token comes from the chunk that owns it, so the gradient is exact). Non-finite
feature values are left as they are. Benign packets are never perturbed.

The perturbed files are then scored by the detector's normal streaming ``predict_many`` path
(``evaluate.predict_files``), so ``eps = 0`` reproduces the clean scores bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as nnf

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.det import DET
from jixiaoan.model.det_train import make_sequences

MODES = ("relative", "range")
DEFAULT_EPS = (0.0, 0.01, 0.05, 0.10)


def malicious_loss_gradient(
    model: DET, batch: FeatureBatch, attacked: np.ndarray, chunk_tokens: int = 16384
) -> np.ndarray:
    """d/d freq of ``sum_{i in attacked} -log(1 - P_i(benign))`` (n, K) float32, file order."""
    model.eval()
    n = len(batch)
    grad_out = np.zeros(batch.freq.shape, np.float32)
    attacked = np.asarray(attacked, bool)
    if n == 0 or not attacked.any():
        return grad_out
    tok = make_sequences([batch])
    weight = torch.from_numpy(attacked[tok.source].astype(np.float32))
    freq = torch.from_numpy(np.ascontiguousarray(tok.freq)).requires_grad_(True)
    byte_idx = torch.from_numpy(tok.byte_idx.astype(np.int64))
    pos = torch.from_numpy(tok.pos.astype(np.int64))
    ctx = model.cfg.context
    with torch.enable_grad():
        table = model.lookup_table().detach()
        for start in range(0, n, chunk_tokens):
            end = min(start + chunk_tokens, n)
            if not bool(weight[start:end].any()):
                continue
            lo = max(0, start - ctx)
            local = torch.from_numpy(np.minimum(tok.rank[lo:end], np.arange(end - lo)))
            logits = model(byte_idx[lo:end], freq[lo:end], pos[lo:end], local, table=table)
            logp = nnf.log_softmax(logits[start - lo :], dim=-1)
            log_mal = torch.logsumexp(logp[:, 1:], dim=-1)
            loss = -(log_mal * weight[start:end]).sum()
            loss.backward()
    grad_out[tok.source] = freq.grad.numpy()
    return grad_out


def fgsm_perturb(
    model: DET,
    batch: FeatureBatch,
    attacked: np.ndarray,
    eps: float,
    mode: str = "relative",
    grad: np.ndarray | None = None,
) -> FeatureBatch:
    """A copy of ``batch`` whose attacked packets' frequency features took one FGSM step."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    out = FeatureBatch(**{k: v for k, v in vars(batch).items()})
    if eps == 0.0 or not np.asarray(attacked, bool).any():
        return out
    if grad is None:
        grad = malicious_loss_gradient(model, batch, attacked)
    freq = batch.freq.astype(np.float32)
    if mode == "relative":
        size = np.abs(freq)
    else:
        spread = 1.0 / model.freq_scale.detach().numpy().astype(np.float32)
        size = np.broadcast_to(spread, freq.shape)
    step = np.float32(eps) * size * np.sign(grad)
    step[~np.asarray(attacked, bool)] = 0.0
    step[~np.isfinite(freq)] = 0.0
    out.freq = (freq + step).astype(batch.freq.dtype)
    return out


def fgsm_files(
    model: DET,
    files: list[FeatureBatch],
    truth: list[np.ndarray],
    eps_values: list[float] | tuple[float, ...],
    mode: str = "relative",
) -> dict[float, list[FeatureBatch]]:
    """Perturbed copies of every file for each ``eps`` (one gradient per file, reused)."""
    grads = [
        malicious_loss_gradient(model, f, y) if np.any(y) and any(e > 0 for e in eps_values)
        else None
        for f, y in zip(files, truth)
    ]
    return {
        float(e): [
            fgsm_perturb(model, f, y, float(e), mode, g) if g is not None else f
            for f, y, g in zip(files, truth, grads)
        ]
        for e in eps_values
    }
