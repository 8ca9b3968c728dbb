"""Metrics, per-file table, plots, and a small end-to-end train/score on bundled captures."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from jixiaoan.model.evaluate import binary_metrics, per_file_table, plot_confusion, plot_pr_curve


def test_binary_metrics_malicious_is_positive():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    p = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], bool)
    m = binary_metrics(y, p)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (3, 1, 1, 5)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)
    assert m["fpr"] == pytest.approx(1 / 6)
    assert m["packets"] == 10
    assert binary_metrics(np.zeros(3, bool), np.zeros(3, bool))["f1"] == 0.0


def test_per_file_table_and_plots(tmp_path):
    truth = [np.array([1, 1, 0], bool), np.array([0, 0], bool)]
    preds = [np.array([1, 0, 1], bool), np.array([1, 0], bool)]
    rows = per_file_table(["a.pcap", "b.pcap"], truth, preds)
    assert rows[0] == {"pcap": "a.pcap", "packets": 3, "malicious": 2, "detected": 1,
                       "false_positives": 1}
    assert rows[1]["false_positives"] == 1 and rows[1]["malicious"] == 0
    y = np.concatenate(truth)
    plot_confusion(y, np.concatenate(preds), tmp_path / "cm.png")
    plot_pr_curve(y, np.linspace(0, 1, len(y)), tmp_path / "pr.png")
    for name in ("cm.png", "pr.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _halves_corpus(data_dir: Path, out: Path) -> Path:
    """Every bundled capture cut into a first and a second half, written as two pcaps."""
    from jixiaoan.capture.batch import FrameBatch
    from jixiaoan.capture.pcapfile import read_capture
    from jixiaoan.capture.pcapwriter import write_pcap

    with open(data_dir / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out_rows = []
    for r in rows:
        frames = FrameBatch.concat(list(read_capture(data_dir / r["pcap"])))
        if len(frames) < 6 or len(set(frames.linktype.tolist())) != 1:
            continue
        half = len(frames) // 2
        stem = r["pcap"].replace("/", "_")
        for part, idx in (("a", np.arange(half)), ("b", np.arange(half, len(frames)))):
            name = f"{part}/{stem}.pcap"
            (out / part).mkdir(parents=True, exist_ok=True)
            write_pcap(out / name, frames.take(idx))
            out_rows.append({**r, "pcap": name})
    labels = out / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["pcap", "label", "attack", "hosts"])
        w.writeheader()
        w.writerows(out_rows)
    return labels


F1_FLOOR = 0.8  # on the held-apart second halves of the bundled captures


def test_end_to_end_train_and_score_on_held_apart_files(tmp_path, data_dir):
    from jixiaoan.model.corpus import load_corpus
    from jixiaoan.model.corpus_split import labelled_split
    from jixiaoan.model.eset import ESeT, ESeTConfig
    from jixiaoan.model.evaluate import score_detector

    if not (data_dir / "labels.csv").exists():
        pytest.skip("bundled captures not present")
    labels = _halves_corpus(data_dir, tmp_path / "corpus")
    corpus = load_corpus(labels, cache_dir=tmp_path / "cache", progress=False)
    train_idx = np.array([i for i, f in enumerate(corpus.files) if f.name.startswith("a/")])
    test_idx = np.array([i for i, f in enumerate(corpus.files) if f.name.startswith("b/")])
    assert len(train_idx) and len(test_idx)
    masks = labelled_split([corpus.labels(i) for i in train_idx], 0.5, seed=0)
    cfg = ESeTConfig(
        rounds=2, pretrain_epochs=25, round_epochs=8, kitnet_epochs=1, kitnet_min_steps=20,
        calib_share=0.0, det={"d_model": 32, "n_heads": 2, "d_ff": 64}, lr=3e-3,
    )
    model = ESeT(replace(cfg, seed=0), corpus.config)
    model.learn_many(corpus.training_data(train_idx, masks))
    m, raw = score_detector(model, corpus, test_idx, 1.0, 1)
    assert m["packets"] == sum(len(corpus.files[i]) for i in test_idx)
    print(f"end-to-end F1 {m['f1']:.3f} (floor {F1_FLOOR})")
    assert m["f1"] >= F1_FLOOR, m
