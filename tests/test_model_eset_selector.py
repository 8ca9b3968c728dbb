"""Confidence selector thresholds and selection; feature enhancement and block sampling."""

from __future__ import annotations

import numpy as np

from jixiaoan.model import eset_enhance as enh
from jixiaoan.model.det_synth import synthetic_stream
from jixiaoan.model.eset_selector import Thresholds, learn_thresholds, select


def test_selector_keeps_only_the_right_side_of_each_threshold():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, 5000)
    rmse = rng.random(5000) * 10
    th = Thresholds(t_m=4.0, t_b=6.0)
    keep = select(pred, rmse, th)
    assert np.all(rmse[keep & (pred == 0)] < 4.0)
    assert np.all(rmse[keep & (pred > 0)] > 6.0)
    # and nothing on the right side is dropped
    assert np.all(keep[(pred == 0) & (rmse < 4.0)])
    assert np.all(keep[(pred > 0) & (rmse > 6.0)])


def test_thresholds_are_learned_and_move_with_the_data():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(1000, int), np.ones(1000, int)]
    rmse = np.r_[rng.normal(1.0, 0.1, 1000), rng.normal(3.0, 0.1, 1000)]
    th = learn_thresholds(rmse, y, y, q=0.95)
    assert abs(th.t_m - np.quantile(rmse[:1000], 0.95)) < 1e-9
    assert abs(th.t_b - np.quantile(rmse[1000:], 0.05)) < 1e-9
    shifted = learn_thresholds(rmse + 5.0, y, y, q=0.95)
    assert abs(shifted.t_m - th.t_m - 5.0) < 1e-6 and abs(shifted.t_b - th.t_b - 5.0) < 1e-6
    # packets DET gets wrong do not set the thresholds
    wrong = y.copy()
    wrong[:100] = 1
    rmse2 = rmse.copy()
    rmse2[:100] = 50.0  # benign packets DET calls malicious, with huge RMSE
    th2 = learn_thresholds(rmse2, y, wrong, q=0.95)
    assert th2.t_m < 2.0
    # no labelled packets of a side: that side keeps everything
    only_benign = learn_thresholds(rmse[:1000], y[:1000], y[:1000])
    assert only_benign.t_b == float("-inf")


def _files(n=3):
    out = []
    for i in range(n):
        b, y = synthetic_stream(40, seed=i, first_session=100 * i)
        out.append((b, y.astype(np.int64)))
    return out


def test_exchange_frequency_swaps_only_freq_within_a_class():
    pairs = _files()
    files = [b for b, _ in pairs]
    rng = np.random.default_rng(0)
    labelled = [np.where(rng.random(len(y)) < 0.3, y, -1) for _, y in pairs]
    pseudo = [np.where(lab < 0, y, -1) for lab, (_, y) in zip(labelled, pairs)]
    xf, xt = enh.exchange_frequency(files, labelled, pseudo, 0.5, np.random.default_rng(1))
    want = sum(round(0.5 * sum(int((p == c).sum()) for p in pseudo)) for c in range(3))
    assert xf and 0 < enh.count(xt) <= want
    donors = {
        c: np.concatenate([f.freq[lab == c] for f, lab in zip(files, labelled)]) for c in range(3)
    }
    for copy, tgt in zip(xf, xt):
        src = next(f for f in files if f.byte_idx is copy.byte_idx)
        on = tgt >= 0
        assert np.array_equal(copy.freq[~on], src.freq[~on])
        for row in np.flatnonzero(on):
            c = tgt[row]
            assert (np.abs(donors[c] - copy.freq[row]).sum(1) == 0).any()


def test_mix_targets_keeps_pseudo_and_labelled():
    lab = [np.array([-1, 1, -1, 0])]
    ps = [np.array([2, -1, -1, 2])]
    out = enh.mix_targets(lab, ps, 1.0, np.random.default_rng(0))
    assert out[0].tolist() == [2, 1, -1, 0]


def test_sample_blocks_bounds_targets_and_keeps_whole_blocks():
    pairs = _files(4)
    files = [b for b, _ in pairs]
    targets = [y for _, y in pairs]
    total = enh.count(targets)
    out = enh.sample_blocks(targets, files, np.ones(4), total // 3, np.random.default_rng(0))
    kept = enh.count(out)
    assert total // 3 <= kept < total
    for f, t, o in zip(files, targets, out):
        blk = enh.block_ids(f)
        for b in np.unique(blk[o >= 0]):
            assert np.all(o[blk == b] == t[blk == b])  # a sampled block is taken whole


def test_loss_weights_boost_labelled_and_balance_classes():
    targets = [np.array([0, 0, 0, 0, 0, 0, 1, 2, -1])]
    labelled = [np.array([0, -1, -1, -1, -1, -1, 1, -1, -1])]
    w = enh.loss_weights(targets, np.ones(1), labelled, labelled_share=0.5, malicious_share=0.5)[0]
    assert w[8] == 0.0
    assert abs(w[targets[0] > 0].sum() - w[targets[0] == 0].sum()) < 1e-5
    lab = labelled[0] >= 0
    assert w[0] > w[1] and w[6] > w[7]  # labelled beat pseudo-labelled of their class
    plain = enh.loss_weights(targets, np.ones(1), malicious_share=0.0)[0]
    assert np.array_equal(plain, (targets[0] >= 0).astype(np.float32))
    assert lab.sum() == 2
