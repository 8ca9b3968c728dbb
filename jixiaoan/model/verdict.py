"""The one verdict interface shared by ESeT, every baseline and the tests.

It follows river's mini-batch contract (``learn_many`` / ``predict_many``), with one twist for
packet streams: ``predict_many`` is stateful. A detector keeps the context of each session
(keyed by ``FeatureBatch.session``) between calls, so a packet's verdict depends only on the
packet and the earlier packets of its session, never on how the stream was cut into batches.
``reset`` forgets that context (a new capture starts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from jixiaoan.features.batch import FeatureBatch

BENIGN = "benign"


@dataclass
class Verdicts:
    """Per-packet verdicts for one batch."""

    malicious_prob: np.ndarray  # float32 (n,), 1 - P(benign), in [0, 1]
    label: np.ndarray  # int16 (n,), index into ``classes``; 0 is benign
    classes: tuple[str, ...]  # classes[0] == "benign"
    anomaly: np.ndarray | None = None  # float32 (n,), optional zero-day score (KitNET RMSE)

    def __len__(self) -> int:
        return len(self.label)

    @property
    def is_malicious(self) -> np.ndarray:
        """Boolean verdict per packet."""
        return self.label > 0

    def attack_names(self) -> np.ndarray:
        """Class name per packet (object array; 'benign' for benign packets)."""
        return np.asarray(self.classes, dtype=object)[self.label]


@dataclass
class TrainingData:
    """Per-capture features with their truth, and which labels a learner may see.

    Every capture was extracted with fresh extractor state, in capture order. ``labels`` is the
    truth (class index per packet); ``labelled`` marks the packets whose label a
    semi-supervised learner is allowed to use, everything else counts as unlabelled.
    """

    files: list[FeatureBatch]
    labels: list[np.ndarray]  # int16 per packet, index into classes
    labelled: list[np.ndarray]  # bool per packet
    classes: tuple[str, ...]  # classes[0] == "benign"
    names: list[str] = field(default_factory=list)

    @property
    def n_packets(self) -> int:
        """Packets over all files."""
        return int(sum(len(f) for f in self.files))


@runtime_checkable
class Detector(Protocol):
    """What every detector offers; see the module docstring for the streaming contract."""

    name: str
    classes: tuple[str, ...]

    def learn_many(self, data: TrainingData) -> None:
        """Fit on the labelled and unlabelled packets of ``data``."""

    def predict_many(self, batch: FeatureBatch) -> Verdicts:
        """Verdicts for a batch, using and updating the per-session context."""

    def reset(self) -> None:
        """Forget all per-session context."""
