"""Synthetic TrainingData for the ESeT tests (no capture needed; holds no tests itself)."""

from __future__ import annotations

import numpy as np

from jixiaoan.model.det_synth import synthetic_stream
from jixiaoan.model.eset import ESeT, ESeTConfig
from jixiaoan.model.verdict import TrainingData

CLASSES = ("benign", "marker", "timing")


def synthetic_files(n_files: int, sessions: int, seed: int = 0):
    """Files of interleaved sessions; AfterImage features carry a class-dependent shift."""
    files, labels = [], []
    for i in range(n_files):
        batch, y = synthetic_stream(sessions, seed=seed + i, first_session=1000 * i)
        rng = np.random.default_rng(seed + 100 + i)
        ai = rng.normal(0.0, 1.0, batch.afterimage.shape).astype(np.float32)
        ai[y > 0, :20] += 3.0
        batch.afterimage = ai
        files.append(batch)
        labels.append(y.astype(np.int16))
    return files, labels


def synthetic_training(n_files: int = 6, sessions: int = 150, fraction: float = 0.2, seed: int = 0):
    """TrainingData with a stratified labelled share."""
    from jixiaoan.model.corpus_split import labelled_split

    files, labels = synthetic_files(n_files, sessions, seed)
    masks = labelled_split(labels, fraction, seed)
    return TrainingData(files, labels, masks, CLASSES, [f"f{i}" for i in range(n_files)])


TINY_ESET = ESeTConfig(
    rounds=2, pretrain_epochs=2, round_epochs=1, pool_max=1500, train_max=1500,
    kitnet_max=2000, kitnet_epochs=1, kitnet_min_steps=10,
    det={"d_model": 16, "n_heads": 2, "d_ff": 32},
)


def tiny_training() -> TrainingData:
    """The small synthetic corpus the ESeT tests train on."""
    return synthetic_training(n_files=5, sessions=60, fraction=0.3, seed=0)


def tiny_trained(data: TrainingData) -> ESeT:
    """ESeT with the tiny settings, trained on ``data``."""
    model = ESeT(TINY_ESET)
    model.learn_many(data)
    return model
