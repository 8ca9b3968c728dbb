"""File-disjoint train/test split, stratified labelled split, calibration hold-out, weights."""

from __future__ import annotations

import numpy as np

from jixiaoan.model.corpus import file_weights
from jixiaoan.model.corpus_split import file_split, holdout_files, labelled_split


def _files():
    names, fams = [], []
    for fam, n in (("benign", 40), ("dos", 4), ("c2", 6), ("ftp-bruteforce", 1), ("exploit", 2)):
        for i in range(n):
            names.append(f"{fam}/capture-{i}.pcap")
            fams.append(fam)
    return names, fams


def test_file_split_is_disjoint_stratified_and_order_independent():
    names, fams = _files()
    is_test = file_split(names, fams)
    test = {n for n, t in zip(names, is_test) if t}
    train = {n for n, t in zip(names, is_test) if not t}
    assert not test & train and len(test) + len(train) == len(names)
    for fam in {"benign", "dos", "c2", "exploit"}:  # families with >= 2 files: both sides
        sides = {bool(t) for f, t in zip(fams, is_test) if f == fam}
        assert sides == {True, False}, fam
    assert not is_test[fams.index("ftp-bruteforce")]  # single-file family: train only
    assert 0.2 < is_test.mean() < 0.4
    perm = np.random.default_rng(3).permutation(len(names))
    again = file_split([names[i] for i in perm], [fams[i] for i in perm])
    assert dict(zip([names[i] for i in perm], again)) == dict(zip(names, is_test))
    other_salt = file_split(names, fams, salt="another")
    assert not np.array_equal(other_salt, is_test)


def test_labelled_split_keeps_class_shares_and_is_seeded():
    rng = np.random.default_rng(0)
    shares = [0.6, 0.3, 0.09, 0.01]
    labels = [rng.choice(4, size=n, p=shares).astype(np.int16) for n in (500, 3000, 40)]
    flat = np.concatenate(labels)
    for fraction in (0.01, 0.05, 0.10, 0.20):
        masks = labelled_split(labels, fraction, seed=1)
        assert [len(m) for m in masks] == [len(y) for y in labels]
        chosen = np.concatenate(masks)
        for cls in range(4):
            count = int((flat == cls).sum())
            assert int(chosen[flat == cls].sum()) == max(1, round(fraction * count))
    a = labelled_split(labels, 0.1, seed=1)
    b = labelled_split(labels, 0.1, seed=1)
    c = labelled_split(labels, 0.1, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_holdout_files_only_candidates_and_keeps_single_family_files():
    fams = ["0"] * 10 + ["3"] * 5 + ["7"]
    has = np.ones(16, bool)
    has[0] = False
    out = holdout_files(fams, has, 0.2, seed=0)
    assert not out[0] and not out[15]
    assert out[:10].sum() == 2 and out[10:15].sum() == 1
    assert np.array_equal(out, holdout_files(fams, has, 0.2, seed=0))


def test_file_weights_cap_big_files():
    w = file_weights([10, 2000, 75000], cap=2000)
    assert w[0] == 1.0 and w[1] == 1.0
    assert abs(w[2] * 75000 - 2000) < 1e-6


def test_holdout_files_spares_families_with_few_files():
    fams = ["0"] * 10 + ["3"] * 4 + ["5"] * 5
    has = np.ones(len(fams), bool)
    for seed in range(5):
        out = holdout_files(fams, has, 0.2, seed=seed, min_files=5)
        assert out[:10].sum() == 2 and out[10:14].sum() == 0 and out[14:].sum() == 1
        assert holdout_files(fams, has, 0.2, seed=seed)[10:14].sum() == 1  # default: min 2
