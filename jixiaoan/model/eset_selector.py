"""ESeT's confidence selector (ESET.md section 5.3).

A pseudo-label from DET is kept only where KitNET agrees: a benign prediction only if its RMSE is
below ``T_m``, a malicious one only if its RMSE is above ``T_b``
(``R_f = [RMSE < T_m ; RMSE > T_b]``, ``Y_f = [y == 0 ; y > 0]``, mask ``= R_f^T x Y_f``).

The thresholds are learned every round from the labelled packets and the current DET (pinned rule):
``T_m`` is the ``q`` quantile (default 0.95) of the RMSEs of labelled packets that are benign and
that DET calls benign; ``T_b`` is the ``1 - q`` quantile of the RMSEs of labelled packets that are
malicious and that DET calls malicious. Where DET gets none of a side right, the side's true
labelled packets are used; with no labelled packets of a side, that side keeps everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_QUANTILE = 0.95


@dataclass(frozen=True)
class Thresholds:
    """RMSE bounds of the selector."""

    t_m: float  # keep benign predictions with RMSE below this
    t_b: float  # keep malicious predictions with RMSE above this

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"t_m": float(self.t_m), "t_b": float(self.t_b)}


def learn_thresholds(
    rmse: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, q: float = DEFAULT_QUANTILE
) -> Thresholds:
    """Thresholds from labelled packets (RMSE, true class, DET's class); rule in module doc."""
    rmse = np.asarray(rmse, dtype=np.float64)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    benign = (y_true == 0) & (y_pred == 0)
    if not benign.any():
        benign = y_true == 0
    malicious = (y_true > 0) & (y_pred > 0)
    if not malicious.any():
        malicious = y_true > 0
    t_m = float(np.quantile(rmse[benign], q)) if benign.any() else float("inf")
    t_b = float(np.quantile(rmse[malicious], 1.0 - q)) if malicious.any() else float("-inf")
    return Thresholds(t_m, t_b)


def select(y_pred: np.ndarray, rmse: np.ndarray, th: Thresholds) -> np.ndarray:
    """Boolean mask of the predictions the selector keeps."""
    y_pred = np.asarray(y_pred)
    rmse = np.asarray(rmse)
    return ((y_pred == 0) & (rmse < th.t_m)) | ((y_pred > 0) & (rmse > th.t_b))
