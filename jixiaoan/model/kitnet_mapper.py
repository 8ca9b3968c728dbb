"""KitNET's feature mapper: correlation distance between features, then hierarchical
clustering cut into groups of at most ``max_group`` features (numpy and scipy only)."""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import linkage, to_tree
from scipy.spatial.distance import squareform


def correlation_distance(Xn: np.ndarray, signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(D, constant)``: the feature-by-feature correlation distance of ``Xn`` (rows are
    samples) and a mask of the features whose spread is zero (their rows of ``D`` are 1)."""
    X = np.asarray(Xn, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    std = np.sqrt((Xc * Xc).mean(axis=0))
    constant = ~(std > 1e-12)
    safe = np.where(constant, 1.0, std)
    corr = (Xc.T @ Xc) / len(X) / np.outer(safe, safe)
    corr = np.clip(corr, -1.0, 1.0)
    D = 1.0 - corr if signed else 1.0 - np.abs(corr)
    D[constant, :] = 1.0
    D[:, constant] = 1.0
    D = (D + D.T) / 2.0
    np.fill_diagonal(D, 0.0)
    return D, constant


def map_features(
    Xn: np.ndarray, max_group: int = 10, signed: bool = False, method: str = "average"
) -> list[np.ndarray]:
    """Feature mapper: groups (sorted int64 index arrays) of at most ``max_group`` features
    that together cover every column of ``Xn`` exactly once."""
    if max_group < 1:
        raise ValueError("max_group must be at least 1")
    n_features = Xn.shape[1]
    D, constant = correlation_distance(Xn, signed)
    groups: list[np.ndarray] = []
    varying = np.flatnonzero(~constant)
    if len(varying) == 1:
        groups.append(varying.copy())
    elif len(varying) > 1:
        sub = D[np.ix_(varying, varying)]
        Z = linkage(squareform(sub, checks=False), method=method)
        stack = [to_tree(Z)]
        while stack:
            node = stack.pop()
            if node.get_count() <= max_group:
                groups.append(np.sort(varying[np.asarray(node.pre_order(), dtype=np.int64)]))
            else:
                stack.extend([node.get_right(), node.get_left()])
    fixed = np.flatnonzero(constant)
    groups.extend(fixed[i : i + max_group] for i in range(0, len(fixed), max_group))
    groups.sort(key=lambda g: int(g[0]))
    assert sum(len(g) for g in groups) == n_features
    return [np.asarray(g, dtype=np.int64) for g in groups]
