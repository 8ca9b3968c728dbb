"""Adversarial fine-tuning of a trained ESeT's DET (robustness hardening, optional).

Training data, all from the *train* split and only from packets whose label the model was
allowed to see (the labelled split at ``fraction``, seeded as in training):

- the original labelled packets (so the clean behaviour is kept);
- traffic-mutated copies of the malicious train captures: random per-flow mutation
  parameters within ``budget`` (``features.mutate``), re-extracted by the normal pipeline; a
  packet keeps the label of the original packet it comes from (a crafted packet: of its
  template) when that one was labelled;
- FGSM copies (``robust_fgsm``) of the same files with ``eps`` on the labelled malicious packets.

DET is fine-tuned for ``epochs`` at a small learning rate; threshold, KitNET and feature
normalisation are kept. Nothing of the test split is used.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from jixiaoan.capture.pcapfile import read_head
from jixiaoan.features.mutate import Budget, FlowParams, flow_index, malicious_flows, mutate_capture
from jixiaoan.features.mutate_search import extract, payloads_of
from jixiaoan.model.corpus import Corpus, file_weights
from jixiaoan.model.corpus_split import labelled_split
from jixiaoan.model.det_train import train_det
from jixiaoan.model.robust_fgsm import fgsm_perturb

IGNORE = -1


def random_params(n_flows: int, budget: Budget, rng, max_len: int = 400) -> FlowParams:
    """Uniformly random per-flow parameters within ``budget``."""
    u = rng.random((n_flows, 4))
    return FlowParams(
        stretch=1.0 + u[:, 0] * max(budget.l_t - 1.0, 0.0),
        craft_rate=u[:, 1] * 2.0 * budget.l_c,
        craft_len=(u[:, 2] * max_len).astype(np.int64),
        pad=(u[:, 3] * max_len / 4).astype(np.int64),
    )


def harden(
    model,
    corpus: Corpus,
    train_idx: np.ndarray,
    root: Path,
    fraction: float = 0.10,
    budgets: tuple[Budget, ...] = (Budget(0.2, 2.0), Budget(0.5, 5.0)),
    eps: float = 0.10,
    epochs: int = 2,
    lr: float = 5e-4,
    seed: int = 0,
    max_packets: int = 1500,
    mutate_fn=None,
) -> dict:
    """Fine-tune ``model.det`` in place (see the module docstring); returns a summary.

    ``mutate_fn(frames, headers, malicious, budget, payloads) -> Mutated`` replaces the random
    mutation (e.g. a swarm search against a grey-box objective: adversarial training proper).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    labels = [corpus.labels(i)[:max_packets] for i in train_idx]
    masks = labelled_split([corpus.labels(i) for i in train_idx], fraction, seed)
    masks = [m[:max_packets] for m in masks]
    files, targets = [], []
    benign_pay: list[bytes] = []
    for k, i in enumerate(train_idx):
        fb = corpus.files[i].features
        fb = fb.take(slice(0, max_packets)) if len(fb) > max_packets else fb
        tgt = np.where(masks[k], labels[k], IGNORE).astype(np.int64)
        if (tgt >= 0).any():
            files.append(fb)
            targets.append(tgt)
        if corpus.files[i].family == "benign" and len(benign_pay) < 200 and rng.random() < 0.2:
            fr = read_head(root / corpus.files[i].name, 200)
            benign_pay += payloads_of(fr, extract(fr)[0], 10)
    n_mut = n_fgsm = 0
    for k, i in enumerate(train_idx):
        lab_mal = masks[k] & (labels[k] > 0)
        if not lab_mal.any():
            continue
        mal = corpus.files[i].malicious[:max_packets]
        fr = read_head(root / corpus.files[i].name, max_packets)
        if len(fr) != len(mal):
            continue
        headers, _ = extract(fr, corpus.config)
        n_flows = len(malicious_flows(flow_index(headers), mal))
        for budget in budgets:
            if mutate_fn is not None:
                m = mutate_fn(fr, headers, mal, budget, benign_pay)
            else:
                params = random_params(n_flows, budget, rng)
                m = mutate_capture(fr, headers, mal, params, budget, benign_pay)
            fb2 = extract(m.frames, corpus.config)[1]
            src = m.template
            tgt = np.where(masks[k][src], labels[k][src], IGNORE).astype(np.int64)
            files.append(fb2)
            targets.append(tgt)
            n_mut += int((tgt > 0).sum())
        fb = corpus.files[i].features.take(slice(0, len(mal)))
        adv = fgsm_perturb(model.det, fb, lab_mal, eps)
        files.append(adv)
        targets.append(np.where(lab_mal, labels[k], IGNORE).astype(np.int64))
        n_fgsm += int(lab_mal.sum())
    weight = file_weights([len(f) for f in files], model.config.file_cap)
    weights = [np.full(len(f), w, np.float32) for f, w in zip(files, weight)]
    fit = train_det(model.det, files, targets, weights, epochs, lr, seed,
                    batch_tokens=model.config.batch_tokens)
    model.det.eval()
    model.reset()
    return {
        "mutation": "random" if mutate_fn is None else "search",
        "epochs": epochs, "lr": lr, "eps": eps, "budgets": [b.label() for b in budgets],
        "mutated_labelled_malicious": n_mut, "fgsm_labelled_malicious": n_fgsm,
        "loss": fit.get("loss"), "seconds": time.perf_counter() - t0,
    }
