"""The semi-supervised rounds of ESeT (ESET.md section 5), on plain per-file arrays.

``run_rounds`` is shared by training (``ESeT.learn_many``) and site adaptation (``adapt``): the
unlabelled pool is cut into slices; round ``r`` looks at slices ``0..r`` with the current DET,
keeps pseudo-labels through the confidence selector (thresholds learned that round), mixes them
with the labelled packets, adds frequency-exchanged samples and trains DET. It stops when the
kept set grows by less than ``min_growth`` or at the round budget.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model import eset_enhance as enh
from jixiaoan.model.eset_selector import Thresholds, learn_thresholds, select

log = logging.getLogger(__name__)


@dataclass
class RoundInputs:
    """Everything the rounds need, per file (lists are aligned with ``files``)."""

    files: list[FeatureBatch]
    labelled: list[np.ndarray]  # int64 targets, -1 = unlabelled or not usable
    pool: list[np.ndarray]  # bool: unlabelled packets the rounds may pseudo-label
    rmse: list[np.ndarray]  # KitNET score per packet
    weight: np.ndarray  # per-packet weight of each file
    check: list[np.ndarray] = field(default_factory=list)  # labelled targets for thresholds


def pool_slices(
    inp: RoundInputs, rounds: int, pool_max: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Slice number (0..rounds-1, -1 = not in the pool) per packet, by whole session blocks."""
    as_targets = [np.where(p, 0, enh.IGNORE).astype(np.int64) for p in inp.pool]
    chosen = enh.sample_blocks(as_targets, inp.files, inp.weight, pool_max, rng)
    out = []
    for t, f in zip(chosen, inp.files, strict=True):
        s = np.full(len(t), -1, dtype=np.int64)
        on = t >= 0
        if on.any():
            blk = enh.block_ids(f)
            slot = rng.integers(0, max(rounds, 1), size=int(blk.max()) + 1)
            s[on] = slot[blk[on]]
        out.append(s)
    return out


def predicted_classes(proba: np.ndarray, threshold: float) -> np.ndarray:
    """Class per packet: benign unless 1 - P(benign) >= threshold, then the likeliest attack."""
    if proba.shape[1] < 2:
        return np.zeros(len(proba), dtype=np.int64)
    mal = 1.0 - proba[:, 0]
    attack = 1 + np.argmax(proba[:, 1:], axis=1)
    return np.where(mal >= threshold, attack, 0).astype(np.int64)


def verdict_arrays(proba: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """A batch's verdict labels (int16, ``predicted_classes``) and malicious probabilities
    (float32, 1 - P(benign) clipped to [0, 1]) from its class probabilities."""
    label = predicted_classes(proba, threshold).astype(np.int16)
    return label, np.clip(1.0 - proba[:, 0], 0.0, 1.0).astype(np.float32)


def run_rounds(
    inp: RoundInputs,
    predict,  # (FeatureBatch) -> (n, C) probabilities with the current DET
    train,  # (files, targets, weights, epochs, seed) -> dict
    cfg,  # ESeTConfig
    rng: np.random.Generator,
    progress: bool = False,
) -> list[dict]:
    """Run the rounds; returns one history entry per round (kept counts, thresholds, loss)."""
    slices = pool_slices(inp, cfg.rounds, cfg.pool_max, rng)
    check = inp.check or inp.labelled
    history: list[dict] = []
    prev_kept = -1
    rounds = range(cfg.rounds)
    if progress:
        from tqdm import tqdm

        rounds = tqdm(rounds, desc="ESeT rounds", leave=False)
    for r in rounds:
        t_round = time.perf_counter()
        active = [(s >= 0) & (s <= r) for s in slices]
        need = [i for i in range(len(inp.files)) if active[i].any() or (check[i] >= 0).any()]
        pred = [np.full(len(f), -1, dtype=np.int64) for f in inp.files]
        for i in need:
            pred[i] = predicted_classes(predict(inp.files[i]), 0.5)
        t_pred = time.perf_counter() - t_round
        th = _thresholds(inp, check, pred, cfg.threshold_quantile)
        pseudo = []
        for i, f in enumerate(inp.files):
            t = np.full(len(f), enh.IGNORE, dtype=np.int64)
            a = active[i]
            if a.any():
                keep = np.ones(int(a.sum()), bool)
                if cfg.selector:
                    keep = select(pred[i][a], inp.rmse[i][a], th)
                idx = np.flatnonzero(a)[keep]
                t[idx] = pred[i][idx]
            pseudo.append(t)
        n_active = int(sum(a.sum() for a in active))
        n_kept = enh.count(pseudo)
        entry = {"round": r, "active": n_active, "kept": n_kept, **th.to_dict()}
        entry["predict_seconds"] = round(t_pred, 1)
        entry["kept_malicious"] = int(sum(int((p > 0).sum()) for p in pseudo))
        if r > 0 and n_kept <= prev_kept * (1.0 + cfg.min_growth):
            entry["stopped"] = "pseudo-label set stopped growing"
            history.append(entry)
            break
        prev_kept = n_kept
        mix = enh.mix_targets(inp.labelled, pseudo, cfg.labelled_share, rng)
        files, targets = list(inp.files), mix
        weights = list(inp.weight)
        if cfg.enhance:
            xf, xt = enh.exchange_frequency(
                inp.files, inp.labelled, pseudo, cfg.exchange_share, rng
            )
            owner = _owners(inp.files, xf)
            files += xf
            targets = targets + xt
            weights += [inp.weight[o] for o in owner]
            entry["exchanged"] = enh.count(xt)
        w_arr = np.asarray(weights, dtype=np.float64)
        targets = enh.sample_blocks(targets, files, w_arr, cfg.train_max, rng)
        keep_files = [i for i, t in enumerate(targets) if (t >= 0).any()]
        groups = [f.pos == 0 for f in files] if cfg.first_packet_balance else None
        loss_w = enh.loss_weights(
            targets, w_arr, inp.labelled, cfg.labelled_weight, cfg.malicious_share, groups
        )
        if keep_files:
            fit = train(
                [files[i] for i in keep_files],
                [targets[i] for i in keep_files],
                [loss_w[i] for i in keep_files],
                cfg.round_epochs,
                cfg.seed + 1 + r,
            )
            entry["loss"] = fit.get("loss", [])
            entry["trained_packets"] = fit.get("packets", 0)
        entry["seconds"] = round(time.perf_counter() - t_round, 1)
        history.append(entry)
        log.info("ESeT round %d: %s", r, entry)
    return history


def _thresholds(inp: RoundInputs, check, pred, q: float) -> Thresholds:
    rm, yt, yp = [], [], []
    for i, c in enumerate(check):
        on = c >= 0
        if on.any() and (pred[i] >= 0).all():
            rm.append(inp.rmse[i][on])
            yt.append(c[on])
            yp.append(pred[i][on])
    if not rm:
        return Thresholds(float("inf"), float("-inf"))
    return learn_thresholds(np.concatenate(rm), np.concatenate(yt), np.concatenate(yp), q)


def _owners(files: list[FeatureBatch], copies: list[FeatureBatch]) -> list[int]:
    ids = {id(f.byte_idx): i for i, f in enumerate(files)}
    return [ids[id(c.byte_idx)] for c in copies]


def first_half(labelled: list[np.ndarray]) -> list[np.ndarray]:
    """Targets keeping, in every file, the first half (rounded up) of its labelled packets."""
    out = []
    for t in labelled:
        idx = np.flatnonzero(t >= 0)
        h = np.full(len(t), enh.IGNORE, dtype=np.int64)
        keep = idx[: (len(idx) + 1) // 2]
        h[keep] = t[keep]
        out.append(h)
    return out
