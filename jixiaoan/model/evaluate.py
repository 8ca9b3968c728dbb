"""Evaluation of detectors on the file-disjoint test split (malicious = positive class).

Metrics: accuracy, precision, recall, F1, FPR, training and prediction time per packet, packets.
Per-file table (pcap, packets, malicious packets, detected, false positives), confusion matrix and
precision-recall curve PNGs (matplotlib, Agg backend).

Methods (``METHODS``): ``eset``; ``det`` (supervised-only DET on the labelled part, same epoch
budget); ``kitnet`` (KitNET alone); ``eset-noselector`` and ``eset-noenhance`` (ablations);
``classic`` (the classic baseline of ``baselines.py``); on request ``eset-x<K>``, a seed
ensemble of K ESeT models (``eset_ensemble``; not in the default set: it trains K times).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.corpus import Corpus
from jixiaoan.model.corpus_split import labelled_split
from jixiaoan.model.verdict import Detector

METHODS = ("eset", "det", "kitnet", "eset-noselector", "eset-noenhance", "classic")
METRIC_KEYS = (
    "accuracy", "precision", "recall", "f1", "fpr",
    "train_us_per_packet", "predict_us_per_packet", "packets",
)
PREDICT_BATCH = 8192


def binary_metrics(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1, FPR and counts, malicious = positive."""
    y = np.asarray(truth, dtype=bool)
    p = np.asarray(pred, dtype=bool)
    tp = int((p & y).sum())
    fp = int((p & ~y).sum())
    fn = int((~p & y).sum())
    tn = int((~p & ~y).sum())
    n = len(y)
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "packets": n,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }


def predict_files(det: Detector, files: list[FeatureBatch]) -> tuple[list, list, float]:
    """Stream each file (after ``reset``) through ``det``; (scores, verdicts, seconds)."""
    scores, preds = [], []
    t0 = time.perf_counter()
    for f in files:
        det.reset()
        s, v = [], []
        for start in range(0, len(f), PREDICT_BATCH):
            out = det.predict_many(f.take(slice(start, start + PREDICT_BATCH)))
            s.append(np.asarray(out.malicious_prob, np.float32))
            v.append(np.asarray(out.is_malicious, bool))
        scores.append(np.concatenate(s) if s else np.zeros(0, np.float32))
        preds.append(np.concatenate(v) if v else np.zeros(0, bool))
    return scores, preds, time.perf_counter() - t0


def per_file_table(
    names: list[str], truth: list[np.ndarray], preds: list[np.ndarray]
) -> list[dict]:
    """One row per test file."""
    return [
        {
            "pcap": name,
            "packets": int(len(y)),
            "malicious": int(y.sum()),
            "detected": int((p & y).sum()),
            "false_positives": int((p & ~y).sum()),
        }
        for name, y, p in zip(names, truth, preds)
    ]


def score_detector(
    det: Detector, corpus: Corpus, test_idx: np.ndarray, train_seconds: float, train_packets: int
) -> tuple[dict, dict]:
    """Metrics on the test files, and the raw per-file data (names, truth, scores, verdicts)."""
    files = [corpus.files[i] for i in test_idx]
    scores, preds, secs = predict_files(det, [f.features for f in files])
    truth = [f.malicious for f in files]
    y, p = np.concatenate(truth), np.concatenate(preds)
    m = binary_metrics(y, p)
    m["train_us_per_packet"] = 1e6 * train_seconds / max(train_packets, 1)
    m["predict_us_per_packet"] = 1e6 * secs / max(len(y), 1)
    raw = {"names": [f.name for f in files], "truth": truth, "scores": scores, "preds": preds}
    return m, raw


def make_detector(
    method: str, eset_config=None, kitnet=None, progress: bool = False
) -> Detector:
    """A fresh, untrained detector for ``method`` (``kitnet``: a fitted KitNET to share)."""
    from jixiaoan.model.eset import ESeT, ESeTConfig

    cfg = eset_config or ESeTConfig()
    if method == "eset":
        return ESeT(cfg, name=method, progress=progress, kitnet=kitnet)
    if method == "det":
        cfg = replace(cfg, supervised_only=True)
        return ESeT(cfg, name=method, progress=progress, kitnet=kitnet)
    if method == "eset-noselector":
        return ESeT(replace(cfg, selector=False), name=method, progress=progress, kitnet=kitnet)
    if method == "eset-noenhance":
        return ESeT(replace(cfg, enhance=False), name=method, progress=progress, kitnet=kitnet)
    if method == "kitnet":
        from jixiaoan.model.baselines import KitNETDetector

        return _build(KitNETDetector, cfg.seed, kitnet)
    if method == "classic":
        from jixiaoan.model.baselines import ClassicBaseline

        return _build(ClassicBaseline, cfg.seed, None)
    from jixiaoan.model.eset_ensemble import ESeTEnsemble, ensemble_size

    if (k := ensemble_size(method)) is not None:
        return ESeTEnsemble(cfg, k, name=method, progress=progress, kitnet=kitnet)
    raise ValueError(
        f"unknown method {method!r}; choose from {', '.join(METHODS)} or eset-x<K> (K >= 2)"
    )


def _build(cls, seed: int, kitnet):
    import inspect

    params = inspect.signature(cls).parameters
    kw = {}
    if "seed" in params:
        kw["seed"] = seed
    if kitnet is not None and "kitnet" in params:
        kw["kitnet"] = kitnet
    return cls(**kw)


def run_method(
    method: str,
    corpus: Corpus,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    fraction: float,
    seed: int = 0,
    eset_config=None,
    kitnet=None,
    kitnet_seconds: float = 0.0,
    progress: bool = False,
) -> tuple[dict, dict, Detector]:
    """Train ``method`` at a labelled ``fraction`` on the train files and score the test files.

    A shared pre-fitted ``kitnet`` may be passed; its fitting time ``kitnet_seconds`` is then
    added to the training time, so the per-packet figures stay honest.
    """
    labels = [corpus.labels(i) for i in train_idx]
    masks = labelled_split(labels, fraction, seed)
    data = corpus.training_data(train_idx, masks)
    det = make_detector(method, eset_config, kitnet, progress)
    t0 = time.perf_counter()
    det.learn_many(data)
    secs = time.perf_counter() - t0 + (kitnet_seconds if kitnet is not None else 0.0)
    m, raw = score_detector(det, corpus, test_idx, secs, data.n_packets)
    m["train_packets"] = data.n_packets
    m["labelled_packets"] = int(sum(int(x.sum()) for x in masks))
    return m, raw, det


def plot_confusion(truth: np.ndarray, pred: np.ndarray, path: str | Path, title: str = "") -> None:
    """Confusion matrix PNG (rows: truth benign/malicious; columns: verdict)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, p = np.asarray(truth, bool), np.asarray(pred, bool)
    cm = np.array([[(~y & ~p).sum(), (~y & p).sum()], [(y & ~p).sum(), (y & p).sum()]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(cm, cmap="Blues")
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, f"{v}", ha="center", va="center",
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["benign", "malicious"])
    ax.set_yticks([0, 1], ["benign", "malicious"])
    ax.set_xlabel("verdict")
    ax.set_ylabel("truth")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pr_curve(truth: np.ndarray, scores: np.ndarray, path: str | Path, title: str = "") -> None:
    """Precision-recall curve PNG of the malicious probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import auc, precision_recall_curve

    y = np.asarray(truth, bool)
    fig, ax = plt.subplots(figsize=(4.4, 3.6))
    if y.any() and (~y).any():
        prec, rec, _ = precision_recall_curve(y, np.asarray(scores, np.float64))
        ax.plot(rec, prec, label=f"AUC {auc(rec, prec):.4f}")
        ax.legend(loc="lower left")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title(title or "precision-recall")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_plots(raw: dict, png_dir: str | Path, stem: str) -> list[str]:
    """Confusion matrix and PR curve for one evaluated detector; returns the paths."""
    out = Path(png_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = np.concatenate(raw["truth"])
    cm, pr = out / f"{stem}_confusion.png", out / f"{stem}_pr.png"
    plot_confusion(y, np.concatenate(raw["preds"]), cm, stem)
    plot_pr_curve(y, np.concatenate(raw["scores"]), pr, stem)
    return [str(cm), str(pr)]


def format_table(rows: list[tuple[str, dict]]) -> str:
    """Plain-text metrics table, one row per (label, metrics)."""
    head = f"{'method':<24}{'acc':>8}{'prec':>8}{'rec':>8}{'f1':>8}{'fpr':>8}"
    head += f"{'tr us':>9}{'pr us':>8}"
    lines = [head, "-" * len(head)]
    for label, m in rows:
        lines.append(
            f"{label:<24}{m['accuracy']:>8.4f}{m['precision']:>8.4f}{m['recall']:>8.4f}"
            f"{m['f1']:>8.4f}{m['fpr']:>8.4f}{m['train_us_per_packet']:>9.1f}"
            f"{m['predict_us_per_packet']:>8.1f}"
        )
    return "\n".join(lines)
