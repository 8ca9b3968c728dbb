"""The fixed train/test file split and the stratified labelled/unlabelled packet split.

File split (file-disjoint, deterministic, independent of file order and machine):
files are grouped by family ('benign' or the attack family). Inside a group they are ordered by
SHA-1 of ``SPLIT_SALT + path``; the first ``round(test_share * n)`` go to test, clamped to
``[1, n - 1]``, so every family with at least 2 files has files on both sides. A family with a
single file goes to **train** (the model must know every family; such families are then not in the
test figures). A file is a single boolean, so it can never be on both sides.

Labelled split: per class, ``max(1, round(fraction * count))`` packets (when the class has any) are
drawn without replacement with a seeded generator, so each class keeps its share.
"""

from __future__ import annotations

import hashlib

import numpy as np

SPLIT_SALT = "jixiaoan-file-split-v1"
DEFAULT_TEST_SHARE = 0.3
FRACTIONS = (0.01, 0.05, 0.10, 0.20)


def _rank_key(salt: str, name: str) -> str:
    return hashlib.sha1(f"{salt}{name}".encode()).hexdigest()


def file_split(
    names: list[str],
    families: list[str],
    test_share: float = DEFAULT_TEST_SHARE,
    salt: str = SPLIT_SALT,
) -> np.ndarray:
    """Boolean per file: True = test. See the module docstring for the rule."""
    if len(names) != len(families):
        raise ValueError("names and families differ in length")
    is_test = np.zeros(len(names), dtype=bool)
    groups: dict[str, list[int]] = {}
    for i, fam in enumerate(families):
        groups.setdefault(fam, []).append(i)
    for members in groups.values():
        n = len(members)
        if n < 2:
            continue
        k = min(n - 1, max(1, int(round(test_share * n))))
        ordered = sorted(members, key=lambda i: (_rank_key(salt, names[i]), names[i]))
        is_test[ordered[:k]] = True
    return is_test


def labelled_split(labels: list[np.ndarray], fraction: float, seed: int) -> list[np.ndarray]:
    """Stratified labelled masks (one bool array per file); see the module docstring."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    sizes = [len(y) for y in labels]
    flat = np.concatenate(labels) if labels else np.zeros(0, np.int16)
    chosen = np.zeros(len(flat), dtype=bool)
    rng = np.random.default_rng(seed)
    for cls in np.unique(flat):
        idx = np.flatnonzero(flat == cls)
        k = max(1, int(round(fraction * len(idx))))
        chosen[rng.choice(idx, size=k, replace=False)] = True
    return list(np.split(chosen, np.cumsum(sizes)[:-1])) if labels else []


def holdout_files(
    families: list[str], has_labels: np.ndarray, share: float, seed: int, min_files: int = 2
) -> np.ndarray:
    """Seeded, family-stratified choice of files held apart for calibration (bool per file).

    Only files with labelled packets are candidates; a family with fewer than ``min_files``
    candidates (at least 2) keeps them all for training: holding apart one of a family's few
    captures can take away the only one like a test capture.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(len(families), dtype=bool)
    if share <= 0:
        return out
    groups: dict[str, list[int]] = {}
    for i, fam in enumerate(families):
        if has_labels[i]:
            groups.setdefault(fam, []).append(i)
    for fam in sorted(groups):
        members = groups[fam]
        if len(members) < max(2, min_files):
            continue
        k = min(len(members) - 1, max(1, int(round(share * len(members)))))
        out[rng.choice(members, size=k, replace=False)] = True
    return out
