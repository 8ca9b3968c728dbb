"""The site baseline gate: deployment on a watched network (ESET.md section 6).

A KitNET fitted to the site's own first minutes of traffic learns what is normal *there*. It
reads only the short-memory AfterImage statistics (decays ``lam >= 1``: they halve within a
second), so a baseline of a minute is representative and an attack leaves no trace a few
seconds after it ends; with the slow decays (half-lives 10 s and 100 s) every packet after the
first flood looked abnormal for minutes (docs/eval/README.md). The gate lets a DET malicious
verdict stand only for a packet whose RMSE under that KitNET is above the ``quantile`` of the
baseline's own RMSEs: traffic that looks like the site's usual traffic is benign whatever the
DET thinks of it. This is the selector's rule of section 5 (a malicious
prediction is kept only above ``T_b``), applied at inference with a KitNET that knows the site.

The same KitNET is the zero-day signal: a packet whose RMSE exceeds ``zero_day_factor`` times
the threshold is flagged as class ``anomaly`` even when the DET calls it benign (0 turns this
off). On the lab captures it caught the floods and brute force the DET misses; the benign
packets it flags fell almost all inside attacks (the victim's own traffic, and a broker
relaying forged commands to the plug).

Like Kitsune, it assumes the baseline window is clean: an attack inside the window becomes
"normal" and is then let through (measured in docs/eval/README.md, "Site baseline gate").
Fitting takes seconds (no DET training), and scoring costs less than the corpus KitNET it
replaces as the verdict's ``anomaly`` (60 of the 100 features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from jixiaoan.features.afterimage import afterimage_columns
from jixiaoan.features.batch import AFTERIMAGE_WIDTH, FeatureBatch
from jixiaoan.model.kitnet import KitNET
from jixiaoan.model.persist import ModelFileError

DEFAULT_GATE_QUANTILE = 0.99
DEFAULT_ZERO_DAY_FACTOR = 5.0
GATE_MIN_LAMBDA = 1.0  # AfterImage decays the gate reads (5, 3 and 1 by default)
ZERO_DAY_CLASS = "anomaly"
MIN_BASELINE_PACKETS = 200


@dataclass
class SiteGate:
    """A site-fitted KitNET and the RMSE above which a malicious verdict may stand."""

    kitnet: KitNET
    columns: np.ndarray  # the AfterImage columns it reads
    threshold: float
    quantile: float
    packets: int  # baseline packets it was fitted on
    zero_day_factor: float = DEFAULT_ZERO_DAY_FACTOR  # 0: no zero-day verdicts

    def verdict_classes(self, classes: tuple[str, ...]) -> tuple[str, ...]:
        """The model's classes plus the zero-day class when zero-day verdicts are on."""
        return (*classes, ZERO_DAY_CLASS) if self.zero_day_factor > 0 else tuple(classes)

    def score(self, afterimage: np.ndarray) -> np.ndarray:
        """RMSE of each packet under the site's KitNET, float32 (n,)."""
        return self.kitnet.score(np.ascontiguousarray(afterimage[:, self.columns]))

    def apply(
        self, label: np.ndarray, rmse: np.ndarray, zero_day_label: int | None = None
    ) -> np.ndarray:
        """``label`` with every malicious verdict at or below the threshold turned benign and,
        given ``zero_day_label``, every benign one above ``zero_day_factor`` x threshold
        turned into it."""
        out = np.where(rmse > self.threshold, label, 0).astype(label.dtype, copy=False)
        if zero_day_label is not None and self.zero_day_factor > 0:
            far = (out == 0) & (rmse > self.zero_day_factor * self.threshold)
            out = np.where(far, zero_day_label, out).astype(label.dtype, copy=False)
        return out

    def state(self, prefix: str = "gate") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(tensors, config)`` for a model file; ``from_state`` rebuilds the gate."""
        tensors, kit_cfg = self.kitnet.state(f"{prefix}.kitnet")
        tensors[f"{prefix}.columns"] = np.asarray(self.columns, np.int64)
        cfg = {"threshold": self.threshold, "quantile": self.quantile, "packets": self.packets,
               "zero_day_factor": self.zero_day_factor, "kitnet": kit_cfg}  # fmt: skip
        return tensors, cfg

    @classmethod
    def from_state(
        cls, tensors: dict[str, np.ndarray], config: dict[str, Any], prefix: str = "gate"
    ) -> SiteGate:
        """Inverse of ``state``; ModelFileError when the card section is malformed."""
        try:
            threshold = float(config["threshold"])
            quantile = float(config["quantile"])
            packets = int(config["packets"])
            factor = float(config.get("zero_day_factor", DEFAULT_ZERO_DAY_FACTOR))
            kit_cfg = config["kitnet"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"site gate section is malformed: {exc!r}") from exc
        if not (np.isfinite(threshold) and np.isfinite(factor) and factor >= 0):
            raise ModelFileError("site gate threshold or zero-day factor is not a usable number")
        kitnet = KitNET.from_state(tensors, kit_cfg, f"{prefix}.kitnet")
        columns = np.asarray(tensors.get(f"{prefix}.columns", np.zeros(0)), np.int64).ravel()
        if (len(columns) != kitnet.n_features or len(columns) == 0
                or columns.min() < 0 or columns.max() >= AFTERIMAGE_WIDTH):
            raise ModelFileError("site gate columns do not match its KitNET")
        return cls(kitnet, columns, threshold, quantile, packets, factor)


def fit_site_gate(
    baseline: FeatureBatch,
    lambdas: tuple[float, ...],
    quantile: float = DEFAULT_GATE_QUANTILE,
    zero_day_factor: float = DEFAULT_ZERO_DAY_FACTOR,
    seed: int = 0,
    max_packets: int = 80_000,
    epochs: int = 2,
    min_steps: int = 60,
    min_lambda: float = GATE_MIN_LAMBDA,
) -> SiteGate:
    """Fit the gate on ``baseline`` (the site's first minutes, assumed attack-free): KitNET on
    (an evenly spaced sample of at most ``max_packets`` of) its AfterImage columns of decay
    ``>= min_lambda`` (``lambdas``: the feature settings' decays), threshold at the ``quantile``
    of its RMSEs; zero-day verdicts above ``zero_day_factor`` x that."""
    if not 0.5 <= quantile <= 1.0:
        raise ValueError("the gate quantile must be between 0.5 and 1")
    if not (zero_day_factor == 0 or zero_day_factor >= 1):
        raise ValueError("the zero-day factor must be 0 (off) or at least 1")
    n = len(baseline)
    if n < MIN_BASELINE_PACKETS:
        raise ValueError(
            f"the site baseline has {n} packets; the gate needs at least "
            f"{MIN_BASELINE_PACKETS}: learn from a longer stretch of the site's traffic"
        )
    columns = afterimage_columns(lambdas, min_lambda)
    x = np.ascontiguousarray(np.asarray(baseline.afterimage, np.float32)[:, columns])
    sample = x if n <= max_packets else x[np.linspace(0, n - 1, max_packets).astype(np.int64)]
    kit = KitNET(seed=seed, min_steps=min_steps).fit(sample, epochs=epochs)
    rmse = kit.score(x)
    threshold = float(np.quantile(rmse[np.isfinite(rmse)], quantile))
    return SiteGate(kit, columns, threshold, float(quantile), n, float(zero_day_factor))
