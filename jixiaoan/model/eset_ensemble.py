"""A seed ensemble of ESeT models: the research method ``eset-x<K>`` of ``evaluate``.

One ESeT's corpus F1 moves by ±0.2 with its training seed: whether its DET generalises to a
flood variant it never saw is close to a coin flip per seed (docs/eval/README.md, session 7).
Averaging the class probabilities of K members trained on the same labelled packets with
different seeds (DET initialisation, calibration hold-out, pool sampling) steadies that. The
members share one KitNET; the decision threshold is the mean of the members' calibrated
thresholds. Inference costs K times one ESeT, so the shipped model stays a single ESeT.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.eset import ESeT, ESeTConfig
from jixiaoan.model.eset_train import verdict_arrays
from jixiaoan.model.verdict import TrainingData, Verdicts

MEMBER_SEED_STEP = 1000  # member k trains with seed + k * 1000: member 0 is the plain ESeT


def ensemble_size(method: str) -> int | None:
    """K for a method named ``eset-x<K>`` (K >= 2), else None."""
    if not method.startswith("eset-x"):
        return None
    try:
        k = int(method[len("eset-x") :])
    except ValueError:
        return None
    return k if k >= 2 else None


class ESeTEnsemble:
    """K ESeT members whose class probabilities are averaged (see the module docstring)."""

    def __init__(
        self,
        config: ESeTConfig | None = None,
        members: int = 3,
        name: str | None = None,
        progress: bool = False,
        kitnet=None,
    ):
        if members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {members}")
        self.config = config or ESeTConfig()
        self.n_members = members
        self.name = name or f"eset-x{members}"
        self.progress = progress
        self.kitnet = kitnet
        self.members: list[ESeT] = []
        self.classes: tuple[str, ...] = ()
        self.threshold = 0.5
        self.info: dict = {}

    def learn_many(self, data: TrainingData) -> None:
        """Train every member on ``data``; the first one fits the shared KitNET if none."""
        self.members = []
        for k in range(self.n_members):
            cfg = replace(self.config, seed=self.config.seed + k * MEMBER_SEED_STEP)
            member = ESeT(cfg, name=f"{self.name}[{k}]", progress=self.progress, kitnet=self.kitnet)
            member.learn_many(data)
            self.kitnet = member.kitnet
            self.members.append(member)
        self.classes = self.members[0].classes
        thresholds = [m.threshold for m in self.members]
        self.threshold = float(np.mean(thresholds))
        self.info = {
            "member_thresholds": thresholds,
            "member_seeds": [m.config.seed for m in self.members],
            "train_seconds": float(sum(m.info.get("train_seconds", 0.0) for m in self.members)),
        }

    def predict_proba_many(self, batch: FeatureBatch) -> np.ndarray:
        """Mean class probabilities (n, C) of the members (each keeps its session context)."""
        if not self.members:
            raise RuntimeError("the ensemble is not trained")
        return np.mean([m.predict_proba_many(batch) for m in self.members], axis=0)

    def predict_many(self, batch: FeatureBatch) -> Verdicts:
        """Verdicts for a batch from the averaged probabilities."""
        label, mal = verdict_arrays(self.predict_proba_many(batch), self.threshold)
        anomaly = self.kitnet.score(batch.afterimage) if len(batch) else None
        return Verdicts(mal, label, self.classes, anomaly)

    def reset(self) -> None:
        """Forget every member's session context."""
        for m in self.members:
            m.reset()
