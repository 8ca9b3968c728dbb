"""ESeT: the semi-supervised packet detector (ESET.md sections 4-5), as a ``Detector``.

``learn_many``:
1. hold apart a seeded, family-stratified share of the files that have labelled packets
   (``calib_share``); their labelled packets calibrate the decision threshold, nothing else;
2. KitNET on the AfterImage features of all packets (capped at ``kitnet_max`` packets, drawn
   with per-file weights);
3. DET pre-trained on the first half of every remaining file's labelled packets;
4. the rounds of ``eset_train.run_rounds`` (selector and enhancement can be switched off for the
   ablation; ``supervised_only`` trains DET on all labelled packets and skips the rounds: the
   supervised baseline, with the same epoch budget);
5. the threshold on 1 - P(benign) maximising F1 on the held-apart labelled packets.

``predict_many`` streams through ``DETStream`` and adds the KitNET score as ``anomaly``; a site
model (``eset_adapt``) may carry a ``site_gate.SiteGate``, whose site-fitted KitNET then gives
the ``anomaly`` and vetoes malicious verdicts on packets that look like the site's baseline.
Training cost is bounded by ``pool_max`` / ``train_max`` / epochs, not by corpus size; DET only
works on the first ``max_file_packets`` packets of each file (KitNET sees samples of all of them),
and per-file weights (``corpus.file_weights``) keep big captures from dominating.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from jixiaoan.features.batch import FeatureBatch, FeatureConfig
from jixiaoan.model import eset_enhance as enh
from jixiaoan.model.corpus import DEFAULT_FILE_CAP, file_weights
from jixiaoan.model.corpus_split import holdout_files
from jixiaoan.model.det import DET, DETConfig
from jixiaoan.model.det_stream import DETStream
from jixiaoan.model.det_train import predict_proba, train_det
from jixiaoan.model.eset_train import RoundInputs, first_half, run_rounds, verdict_arrays
from jixiaoan.model.kitnet import KitNET
from jixiaoan.model.persist import load_model_dir, save_model_dir
from jixiaoan.model.site_gate import SiteGate
from jixiaoan.model.verdict import BENIGN, TrainingData, Verdicts

KIND = "eset"
SMALL_DET = {"d_model": 32, "d_ff": 64}
log = logging.getLogger(__name__)


@dataclass
class ESeTConfig:
    """ESeT training settings; the defaults keep a corpus run to minutes on 2 CPU cores."""

    rounds: int = 4
    pretrain_epochs: int = 6
    round_epochs: int = 1
    lr: float = 2e-3
    selector: bool = True
    enhance: bool = True
    supervised_only: bool = False
    threshold_quantile: float = 0.95  # selector: T_m / T_b quantiles (eset_selector)
    labelled_share: float = 1.0  # share of labelled packets mixed into every round
    labelled_weight: float = 0.5  # labelled packets carry at least this share of the loss
    malicious_share: float = 0.5  # share of the loss on malicious targets (0: as they come)
    first_packet_balance: bool = False  # balance classes separately for first session packets
    exchange_share: float = 0.2  # frequency-exchanged extra samples per pseudo-label
    pool_max: int = 48_000  # unlabelled packets the rounds look at, over all rounds
    train_max: int = 32_000  # target packets per DET training call
    kitnet_max: int = 80_000  # packets KitNET is fitted on
    kitnet_epochs: int = 2
    kitnet_batch: int = 2048
    kitnet_min_steps: int = 60  # KitNET's own default (600) is sized for small data
    batch_tokens: int = 8192
    max_file_packets: int = 4000  # DET works on at most the first this many packets of a file
    calib_share: float = 0.2
    calib_min_files: int = 2  # families with fewer labelled files are never held apart
    calib_tolerance: float = 0.02
    # > 0: the threshold is instead the (1 - this) quantile of the held-apart benign packets'
    # malicious probabilities (a benign false-positive target; needs no attack in the hold-out)
    calib_benign_fpr: float = 0.0
    file_cap: int = DEFAULT_FILE_CAP
    min_growth: float = 0.01
    seed: int = 0
    # DETConfig overrides. The product trains a narrower DET than ESET.md's d_model 64: over
    # 4-6 seeds it was as accurate (test F1 0.67 vs 0.60 at 10 %, 0.70 vs 0.39 at 1 %) and
    # 1.7x faster in inference (docs/eval/README.md, "Session 5").
    det: dict = field(default_factory=lambda: dict(SMALL_DET))

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ESeTConfig:
        """Inverse of to_dict; unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _seed(seed: int) -> None:
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def file_family(labels: np.ndarray) -> int:
    """A file's class for stratification: its most common attack class, else benign (0)."""
    mal = labels[labels > 0]
    return int(np.bincount(mal).argmax()) if len(mal) else 0


class ESeT:
    """The ESeT detector; see the module docstring."""

    def __init__(
        self,
        config: ESeTConfig | None = None,
        feature_config: FeatureConfig | None = None,
        name: str = KIND,
        progress: bool = False,
        kitnet: KitNET | None = None,
    ) -> None:
        self.config = config or ESeTConfig()
        self.feature_config = feature_config or FeatureConfig()
        self.name = name
        self.classes: tuple[str, ...] = (BENIGN, "malicious")
        self.det: DET | None = None
        self.kitnet: KitNET | None = kitnet  # a fitted one is reused (KitNET needs no labels)
        self.threshold = 0.5
        self.gate: SiteGate | None = None  # site baseline gate (site_gate), after adaptation
        self.history: list[dict] = []
        self.info: dict = {}
        self.progress = progress
        self._stream: DETStream | None = None

    # ----- training ---------------------------------------------------------------------------

    def new_det(self, n_classes: int) -> DET:
        """A fresh DET sized for the feature settings and classes."""
        fc = self.feature_config
        over = dict(self.config.det)
        cfg = DETConfig(n_bytes=fc.n_bytes, n_freq=fc.n_freq, n_classes=n_classes, **over)
        return DET(cfg)

    def fit_kitnet(self, files: list[FeatureBatch], weight: np.ndarray, rng=None) -> KitNET:
        """KitNET on (a per-file-weighted sample of) all packets' AfterImage features; its own
        seeded generator by default, so a shared pre-fitted KitNET gives the same model."""
        cfg = self.config
        rng = rng if rng is not None else np.random.default_rng([cfg.seed, 1])
        x = np.concatenate([f.afterimage for f in files]).astype(np.float32)
        if len(x) > cfg.kitnet_max:
            p = np.concatenate([np.full(len(f), w) for f, w in zip(files, weight)])
            pick = rng.choice(len(x), size=cfg.kitnet_max, replace=False, p=p / p.sum())
            x = x[np.sort(pick)]
        kit = KitNET(seed=cfg.seed, min_steps=cfg.kitnet_min_steps)
        return kit.fit(x, epochs=cfg.kitnet_epochs, batch_size=cfg.kitnet_batch)

    def _train(self, files, targets, weights, epochs, seed) -> dict:
        cfg = self.config
        return train_det(
            self.det, files, targets, weights, epochs, cfg.lr, seed, batch_tokens=cfg.batch_tokens
        )

    def _predict_file(self, batch: FeatureBatch) -> np.ndarray:
        return predict_proba(self.det, batch)

    def learn_many(self, data: TrainingData) -> None:
        """Fit on ``data`` (see the module docstring)."""
        cfg = self.config
        t0 = time.perf_counter()
        _seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.classes = tuple(data.classes)
        weight = file_weights([len(f) for f in data.files], cfg.file_cap)
        if self.kitnet is None:
            self.kitnet = self.fit_kitnet(data.files, weight)
        cut = slice(0, cfg.max_file_packets)
        files = [f.take(cut) if len(f) > cfg.max_file_packets else f for f in data.files]
        labels = [np.asarray(y[cut], dtype=np.int64) for y in data.labels]
        labelled = [np.asarray(m[cut], dtype=bool) for m in data.labelled]
        weight = file_weights([len(f) for f in files], cfg.file_cap)
        fam = [str(file_family(y)) for y in labels]
        has_lab = np.array([m.any() for m in labelled])
        calib = holdout_files(fam, has_lab, cfg.calib_share, cfg.seed, cfg.calib_min_files)
        lab = [np.where(m & ~c, y, enh.IGNORE) for y, m, c in zip(labels, labelled, calib)]
        log.info("KitNET ready after %.1f s", time.perf_counter() - t0)
        rmse = [self.kitnet.score(f.afterimage) for f in files]
        self.det = self.new_det(len(self.classes))
        total_epochs = cfg.pretrain_epochs + cfg.rounds * cfg.round_epochs
        pre = lab if cfg.supervised_only else first_half(lab)
        pre = enh.sample_blocks(pre, files, weight, cfg.train_max, rng)
        use = [i for i, t in enumerate(pre) if (t >= 0).any()]
        epochs = total_epochs if cfg.supervised_only else cfg.pretrain_epochs
        pre_fit = {}
        groups = [f.pos == 0 for f in files] if cfg.first_packet_balance else None
        pre_w = enh.loss_weights(pre, weight, malicious_share=cfg.malicious_share, groups=groups)
        if use:
            pre_fit = self._train(
                [files[i] for i in use], [pre[i] for i in use],
                [pre_w[i] for i in use], epochs, cfg.seed,
            )
        pre_info = {"packets": pre_fit.get("packets", 0), "loss": pre_fit.get("loss", [])}
        self.history = [{"pretrain": pre_info}]
        log.info("DET pre-trained after %.1f s: %s", time.perf_counter() - t0, pre_info)
        if not cfg.supervised_only and cfg.rounds > 0:
            inp = RoundInputs(
                files=[f for f, c in zip(files, calib) if not c],
                labelled=[t for t, c in zip(lab, calib) if not c],
                pool=[~m for m, c in zip(labelled, calib) if not c],
                rmse=[r for r, c in zip(rmse, calib) if not c],
                weight=weight[~calib],
            )
            self.history += run_rounds(
                inp, self._predict_file, self._train, cfg, rng, self.progress
            )
        self.threshold, calib_info = self.calibrate(
            [f for f, c in zip(files, calib) if c],
            [np.where(m, y, enh.IGNORE) for y, m, c in zip(labels, labelled, calib) if c],
        )
        self.info = {
            "train_packets": data.n_packets,
            "labelled_packets": int(sum(int(m.sum()) for m in data.labelled)),
            "files": len(files),
            "calibration_files": int(calib.sum()),
            "calibration": calib_info,
            "train_seconds": time.perf_counter() - t0,
        }
        self.reset()

    def calibrate(self, files: list[FeatureBatch], targets: list[np.ndarray]) -> tuple[float, dict]:
        """Threshold on 1 - P(benign) from labelled packets of held-apart files: of the grid
        values whose F1 is within ``calib_tolerance`` of the best, the one nearest 0.5 (the
        held-apart set is small, so a flat F1 curve must not push the threshold to an extreme);
        0.5 when the set lacks either class. With ``calib_benign_fpr`` > 0: the lowest grid value
        at or above that upper quantile of the benign packets' scores."""
        probs, truth = [], []
        for f, t in zip(files, targets):
            on = t >= 0
            if on.any():
                probs.append(1.0 - self._predict_file(f)[on, 0])
                truth.append(t[on] > 0)
        if not probs:
            return 0.5, {"packets": 0}
        p, y = np.concatenate(probs), np.concatenate(truth)
        info = {"packets": int(len(y)), "malicious": int(y.sum())}
        grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
        target = self.config.calib_benign_fpr
        if target > 0 and (~y).any():
            q = float(np.quantile(p[~y], 1.0 - target))
            thr = float(grid[min(int(np.searchsorted(grid, q - 1e-9)), len(grid) - 1)])
            info.update({"threshold": thr, "benign_fpr": float((p[~y] >= thr).mean())})
            return thr, info
        if y.all() or not y.any():
            return 0.5, info
        pred = p[None, :] >= grid[:, None]
        tp = (pred & y).sum(1)
        fp = (pred & ~y).sum(1)
        fn = (~pred & y).sum(1)
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
        best = np.flatnonzero(f1 >= f1.max() - self.config.calib_tolerance - 1e-12)
        thr = float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])
        info.update({"threshold": thr, "f1": float(f1.max())})
        return thr, info

    # ----- inference --------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all per-session context."""
        self._stream = DETStream(self.det, threads=0) if self.det is not None else None

    def predict_proba_many(self, batch: FeatureBatch) -> np.ndarray:
        """Class probabilities (n, C) for a batch, using and updating the session context."""
        if self._stream is None:
            raise RuntimeError("ESeT is not trained")
        return self._stream.predict_proba(batch)

    def predict_many(self, batch: FeatureBatch) -> Verdicts:
        """Verdicts for a batch, using and updating the per-session context."""
        label, mal = verdict_arrays(self.predict_proba_many(batch), self.threshold)
        anomaly = None
        if self.gate is not None and len(batch):
            anomaly = self.gate.score(batch.afterimage)
            label = self.gate.apply(label, anomaly, zero_day_label=len(self.classes))
        elif self.kitnet is not None and len(batch):
            anomaly = self.kitnet.score(batch.afterimage)
        return Verdicts(mal, label, self.verdict_classes, anomaly)

    @property
    def verdict_classes(self) -> tuple[str, ...]:
        """Names of the verdict labels: the DET's classes, plus the site gate's zero-day class."""
        return self.gate.verdict_classes(self.classes) if self.gate is not None else self.classes

    # ----- persistence ------------------------------------------------------------------------

    def card(self, extra: dict | None = None) -> dict:
        """JSON card describing this model."""
        return {
            "kind": KIND,
            "name": self.name,
            "classes": list(self.classes),
            "threshold": self.threshold,
            "eset": self.config.to_dict(),
            "det": self.det.cfg.to_dict() if self.det is not None else None,
            "feature_config": self.feature_config.to_dict(),
            "history": _jsonable(self.history),
            "info": _jsonable(self.info),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **(extra or {}),
        }

    def save(self, out_dir: str | Path, extra: dict | None = None) -> Path:
        """Write weights.safetensors + card.json; ``extra`` is merged into the card."""
        if self.det is None or self.kitnet is None:
            raise RuntimeError("ESeT is not trained")
        tensors = {f"det.{k}": v for k, v in self.det.state_dict().items()}
        k_tensors, k_cfg = self.kitnet.state("kitnet")
        tensors.update(k_tensors)
        card = self.card(extra)
        card["kitnet"] = k_cfg
        if self.gate is not None:
            g_tensors, card["site_gate"] = self.gate.state("gate")
            tensors.update(g_tensors)
        return save_model_dir(out_dir, tensors, card)

    @classmethod
    def load(cls, model_dir: str | Path) -> ESeT:
        """Read a directory written by ``save``."""
        tensors, card = load_model_dir(model_dir)
        model = cls(
            ESeTConfig.from_dict(card.get("eset", {})),
            FeatureConfig.from_dict(card.get("feature_config", {})),
            name=card.get("name", KIND),
        )
        model.classes = tuple(card["classes"])
        model.threshold = float(card.get("threshold", 0.5))
        model.det = DET(DETConfig.from_dict(card["det"]))
        state = {
            k[4:]: torch.from_numpy(np.array(v)) for k, v in tensors.items() if k.startswith("det.")
        }
        model.det.load_state_dict(state)
        model.det.eval()
        model.kitnet = KitNET.from_state(tensors, card["kitnet"], "kitnet")
        if card.get("site_gate") is not None:
            model.gate = SiteGate.from_state(tensors, card["site_gate"], "gate")
        model.history = card.get("history", [])
        model.info = card.get("info", {})
        model.card_data = card
        model.reset()
        return model


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
