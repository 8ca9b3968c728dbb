"""Synthetic TrainingData for the ESeT tests (no capture needed; holds no tests itself)."""

from __future__ import annotations

import numpy as np

from jixiaoan.model.det_synth import synthetic_stream
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
