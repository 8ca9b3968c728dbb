"""Baseline detectors for the comparison with ESeT (ESET.md section 7).

- :class:`KitNETDetector`: KitNET alone (unsupervised; labels only pick its threshold).
- :class:`ClassicBaseline`: a classic machine-learning model (scikit-learn
  ``HistGradientBoostingClassifier``) on AfterImage features plus a few header fields decoded
  from the anonymised bytes (lengths, protocol, TTL, ports, TCP flags; never addresses).

Both follow the :class:`~jixiaoan.model.verdict.Detector` contract. Their verdicts are a pure
function of each packet's features (the session context is already inside AfterImage), so
``predict_many`` keeps no state and how the stream is cut into batches cannot matter.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import precision_recall_curve, roc_curve
from threadpoolctl import threadpool_limits

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.classic_features import Quantiser, classic_features
from jixiaoan.model.kitnet import KitNET
from jixiaoan.model.persist import ModelFileError, load_model_dir, save_model_dir
from jixiaoan.model.verdict import BENIGN, TrainingData, Verdicts

MALICIOUS = "malicious"


def _binary_classes(classes: tuple[str, ...]) -> tuple[str, ...]:
    """Benign name of the training data plus one generic malicious class."""
    if not classes:
        return (BENIGN, MALICIOUS)
    return tuple(classes) if len(classes) == 2 else (classes[0], MALICIOUS)


def _file_weights(counts: np.ndarray, max_weight: float) -> np.ndarray:
    """Per-packet weight of each file so every file counts about equally: the median file
    size over the file's size, capped at ``max_weight`` (tiny files cannot dominate)."""
    counts = np.asarray(counts, dtype=np.float64)
    used = counts[counts > 0]
    if len(used) == 0:
        return np.zeros_like(counts)
    w = np.minimum(max_weight, np.median(used) / np.maximum(counts, 1.0))
    return np.where(counts > 0, w, 0.0)


def _balance_classes(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rescale weights so every class present has the same total weight."""
    totals = np.bincount(y, weights=w)
    present = totals > 0
    target = totals[present].mean()
    scale = np.zeros_like(totals)
    scale[present] = target / totals[present]
    return w * scale[y]


# ---- header fields from the anonymised bytes --------------------------------------------------


# ---- KitNET alone -----------------------------------------------------------------------------


class KitNETDetector:
    """KitNET alone: fitted on training packets labelled or not, drawn so that no file counts
    as more than ``file_packets`` packets (at most ``max_fit`` in all; without this the floods
    that make up most packets of the corpus are learnt as normal: test AUC 0.29), flagging a
    packet when its RMSE reaches a threshold.

    Threshold (``threshold_rule``), from the labelled training packets when both benign and
    malicious ones are labelled: ``"youden"`` (default) the RMSE maximising TPR - FPR, which
    does not depend on the class mix; ``"f1"`` the RMSE maximising F1 (on the corpus, where
    most labelled packets are malicious floods, it flags nearly everything: FPR 0.98). Otherwise,
    or with ``"quantile"``: the ``benign_quantile`` quantile of the labelled benign RMSEs (of
    all RMSEs when nothing benign is labelled). ``malicious_prob`` is a logistic of
    ``log(rmse / threshold)`` (0.5 exactly at the threshold), ``anomaly`` is the raw RMSE.
    Classes: the training data's benign name and one generic ``"malicious"`` class (or the
    training classes themselves when they are already two).
    """

    def __init__(
        self,
        seed: int = 0,
        kitnet: KitNET | None = None,
        threshold_rule: str = "youden",
        benign_quantile: float = 0.99,
        max_fit: int = 100_000,
        file_packets: int = 2000,
        slope: float = 4.0,
        name: str = "kitnet",
        **kitnet_settings: Any,
    ) -> None:
        if threshold_rule not in ("youden", "f1", "quantile"):
            raise ValueError("threshold_rule must be 'youden', 'f1' or 'quantile'")
        self.name = name
        self.classes: tuple[str, ...] = (BENIGN, MALICIOUS)
        self.seed = seed
        self.kitnet = kitnet
        self.threshold_rule = threshold_rule
        self.benign_quantile = benign_quantile
        self.max_fit = max_fit
        self.file_packets = file_packets
        self.slope = slope
        self.kitnet_settings = kitnet_settings
        self.threshold = float("nan")

    def learn_many(self, data: TrainingData) -> None:
        """Fit KitNET (unless one was given) and choose the threshold."""
        self.classes = _binary_classes(tuple(data.classes))
        files = [f for f in data.files if len(f)]
        if self.kitnet is None:
            x = np.concatenate([f.afterimage for f in files]).astype(np.float32)
            sizes = np.array([len(f) for f in files], dtype=np.float64)
            w = np.minimum(1.0, self.file_packets / sizes)
            p = np.concatenate([np.full(len(f), wf) for f, wf in zip(files, w)])
            rng = np.random.default_rng(self.seed)
            k = min(self.max_fit, int(round(w @ sizes)))
            x = x[np.sort(rng.choice(len(x), k, replace=False, p=p / p.sum()))]
            self.kitnet = KitNET(seed=self.seed, **self.kitnet_settings).fit(x)
        scores, truth = [], []
        for f, y, m in zip(data.files, data.labels, data.labelled):
            m = np.asarray(m, bool)
            if m.any():
                scores.append(self.kitnet.score(f.afterimage[m]))
                truth.append(np.asarray(y)[m] > 0)
        s = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        y = np.concatenate(truth) if truth else np.zeros(0, bool)
        self.threshold = self._choose_threshold(s, y, files)

    def _choose_threshold(self, s: np.ndarray, y: np.ndarray, files: list[FeatureBatch]) -> float:
        both = y.any() and (~y).any()
        if self.threshold_rule == "youden" and both:
            fpr, tpr, thresholds = roc_curve(y, s)
            best = int(np.argmax(tpr[1:] - fpr[1:])) + 1  # thresholds[0] is +inf
            return float(thresholds[best])
        if self.threshold_rule == "f1" and both:
            precision, recall, thresholds = precision_recall_curve(y, s)
            f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
            return float(thresholds[int(np.argmax(f1[:-1]))])
        benign = (
            s[~y]
            if (~y).any()
            else np.concatenate([self.kitnet.score(f.afterimage) for f in files])
        )
        return float(np.quantile(benign, self.benign_quantile))

    def predict_many(self, batch: FeatureBatch) -> Verdicts:
        """Verdicts from the KitNET RMSE of each packet (stateless)."""
        if self.kitnet is None or not np.isfinite(self.threshold):
            raise RuntimeError(f"{self.name}: learn_many has not run")
        rmse = self.kitnet.score(batch.afterimage) if len(batch) else np.zeros(0, np.float32)
        ratio = np.maximum(rmse.astype(np.float64), 1e-30) / max(self.threshold, 1e-30)
        z = np.clip(self.slope * np.log(ratio), -60.0, 60.0)
        prob = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        label = (rmse >= self.threshold).astype(np.int16)
        return Verdicts(prob, label, self.classes, anomaly=rmse.astype(np.float32))

    def reset(self) -> None:
        """Nothing to forget: verdicts are per packet."""

    def _limits(self) -> Any:
        return threadpool_limits(self.threads) if self.threads > 0 else contextlib.nullcontext()

    def save(self, out_dir: str | os.PathLike) -> None:
        """Model directory (persist.py) with the KitNET and the threshold."""
        if self.kitnet is None:
            raise RuntimeError(f"{self.name}: nothing to save before learn_many")
        tensors, config = self.kitnet.state("kitnet")
        card = {
            "kind": "kitnet-detector",
            "name": self.name,
            "classes": list(self.classes),
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "slope": self.slope,
            "kitnet": config,
        }
        save_model_dir(out_dir, tensors, card)

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> KitNETDetector:
        """Read a directory written by :meth:`save`."""
        tensors, card = load_model_dir(model_dir)
        if card.get("kind") != "kitnet-detector":
            raise ModelFileError(f"{model_dir}: not a KitNET detector ({card.get('kind')!r})")
        det = cls(kitnet=KitNET.from_state(tensors, card["kitnet"], "kitnet"), name=card["name"])
        det.classes = tuple(card["classes"])
        det.threshold = float(card["threshold"])
        det.threshold_rule = card["threshold_rule"]
        det.slope = float(card["slope"])
        return det


# ---- classic machine learning -----------------------------------------------------------------


class _Boosted:
    """One gradient-boosting stage, or a constant class when only one was seen."""

    def __init__(self, seed: int, max_iter: int, learning_rate: float, max_leaf_nodes: int):
        self.model = HistGradientBoostingClassifier(
            max_iter=max_iter,
            learning_rate=learning_rate,
            max_leaf_nodes=max_leaf_nodes,
            early_stopping=False,
            random_state=seed,
        )
        self.columns = np.zeros(0, np.int64)  # class of each probability column

    def fit(self, codes: np.ndarray, y: np.ndarray, w: np.ndarray) -> _Boosted:
        self.columns = np.unique(y)
        if len(self.columns) > 1:
            self.model.fit(codes, y, sample_weight=w / w.mean())
            self.columns = np.asarray(self.model.classes_, dtype=np.int64)
        return self

    def proba(self, codes: np.ndarray) -> np.ndarray:
        """(n, len(columns)) probabilities."""
        if len(self.columns) == 1:
            return np.ones((len(codes), 1))
        return self.model.predict_proba(codes)


class ClassicBaseline:
    """Gradient-boosted trees on :func:`classic_features`, trained on the labelled packets only.

    Two stages: a benign-vs-malicious model (``max_iter`` trees) decides, and an attack-family
    model (``family_iter`` rounds, fitted on the labelled malicious packets) names the family of
    the packets flagged; one multi-class model over ~20 families cost ~20 trees per round and
    ~340 us per packet to predict. Weights: every file counts about equally (the median
    labelled count over the file's, capped at ``file_cap``), every attack family equally, and
    benign as much as all families together. At most ``max_train`` labelled packets (seeded
    draw). ``is_malicious`` agrees with ``malicious_prob > 0.5``.
    """

    def __init__(
        self,
        seed: int = 0,
        max_iter: int = 100,
        family_iter: int = 30,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        file_cap: float = 20.0,
        max_train: int = 400_000,
        threads: int = 0,
        name: str = "classic",
    ) -> None:
        self.name = name
        self.threads = threads  # OpenMP threads for fit/predict; 0 leaves the library default
        self.classes: tuple[str, ...] = (BENIGN, MALICIOUS)
        self.seed = seed
        self.file_cap = file_cap
        self.max_train = max_train
        self.detector = _Boosted(seed, max_iter, learning_rate, max_leaf_nodes)
        self.family = _Boosted(seed, family_iter, learning_rate, max_leaf_nodes)
        self.quantiser = Quantiser(seed=seed)
        self._fitted = False

    def learn_many(self, data: TrainingData) -> None:
        """Fit on the labelled packets of ``data`` (unlabelled ones are ignored)."""
        self.classes = tuple(data.classes) if data.classes else (BENIGN, MALICIOUS)
        counts = np.array([int(np.asarray(m, bool).sum()) for m in data.labelled])
        weights = _file_weights(counts, self.file_cap)
        xs, ys, ws = [], [], []
        for f, y, m, w in zip(data.files, data.labels, data.labelled, weights):
            m = np.asarray(m, bool)
            if m.any():
                xs.append(classic_features(f.take(np.flatnonzero(m))))
                ys.append(np.asarray(y)[m].astype(np.int64))
                ws.append(np.full(int(m.sum()), w))
        if not xs:
            raise ValueError(f"{self.name}: no labelled packets to learn from")
        X, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
        if len(y) > self.max_train:
            rng = np.random.default_rng(self.seed)
            pick = np.sort(rng.choice(len(y), self.max_train, replace=False))
            X, y, w = X[pick], y[pick], w[pick]
        w = _balance_classes(y, w)  # every class (benign and each family) the same total
        bad = y > 0
        families = len(np.unique(y[bad]))
        w_binary = np.where(bad, w / max(families, 1), w)  # benign = all families together
        codes = self.quantiser.fit(X).transform(X)
        with self._limits():
            self.detector.fit(codes, bad.astype(np.int64), w_binary)
            if bad.any():
                self.family.fit(codes[bad], y[bad], w[bad])
        self._fitted = True

    def _malicious(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        """Quantised features and P(malicious) per packet."""
        if not self._fitted:
            raise RuntimeError(f"{self.name}: learn_many has not run")
        codes = self.quantiser.transform(classic_features(batch))
        if 1 not in self.detector.columns or not len(batch):
            return codes, np.zeros(len(batch))
        p = self.detector.proba(codes)
        return codes, p[:, list(self.detector.columns).index(1)]

    def predict_proba(self, batch: FeatureBatch) -> np.ndarray:
        """Class probabilities, float32 (n, len(classes)): P(benign), then P(malicious) split
        over the families by the family model."""
        probs = np.zeros((len(batch), len(self.classes)), np.float32)
        with self._limits():
            codes, p_bad = self._malicious(batch)
            probs[:, 0] = 1.0 - p_bad
            if len(batch) and len(self.family.columns):
                probs[:, self.family.columns] = p_bad[:, None] * self.family.proba(codes)
        return probs

    def predict_many(self, batch: FeatureBatch) -> Verdicts:
        """Verdicts per packet (stateless); the family model runs on flagged packets only."""
        label = np.zeros(len(batch), np.int16)
        with self._limits():
            codes, p_bad = self._malicious(batch)
            flagged = np.flatnonzero(p_bad > 0.5)
            if len(flagged) and len(self.family.columns):
                fam = self.family.proba(codes[flagged])
                label[flagged] = self.family.columns[np.argmax(fam, axis=1)]
        malicious = np.clip(p_bad, 0.0, 1.0).astype(np.float32)
        return Verdicts(malicious, label, self.classes)

    def reset(self) -> None:
        """Nothing to forget: verdicts are per packet."""

    def _limits(self) -> Any:
        return threadpool_limits(self.threads) if self.threads > 0 else contextlib.nullcontext()
