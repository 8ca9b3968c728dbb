"""ESeT's Detector contract on synthetic features: seeds, probabilities, batch cuts, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from test_model_eset_support import (
    CLASSES,
    TINY_ESET,
    synthetic_files,
)

from jixiaoan.model.eset import ESeT
from jixiaoan.model.verdict import Detector

TINY = TINY_ESET


@pytest.fixture(scope="module")
def unseen():
    files, labels = synthetic_files(1, 60, seed=77)
    return files[0], labels[0]


def _stream(model, batch, cuts):
    model.reset()
    edges = [0, *cuts, len(batch)]
    parts = [model.predict_many(batch.take(slice(a, b))) for a, b in zip(edges[:-1], edges[1:])]
    probs = np.concatenate([p.malicious_prob for p in parts])
    return probs, np.concatenate([p.label for p in parts])


def test_is_a_detector_with_probabilities_in_range(tiny_eset, unseen):
    assert isinstance(tiny_eset, Detector)
    assert tiny_eset.classes == CLASSES
    v = tiny_eset.predict_many(unseen[0])
    assert len(v) == len(unseen[0])
    assert v.malicious_prob.dtype == np.float32
    assert np.all((v.malicious_prob >= 0) & (v.malicious_prob <= 1))
    assert v.label.min() >= 0 and v.label.max() < len(CLASSES)
    assert v.anomaly is not None and np.isfinite(v.anomaly).all()
    assert np.array_equal(v.is_malicious, v.malicious_prob >= tiny_eset.threshold)


def test_batch_cut_does_not_change_verdicts(tiny_eset, unseen):
    batch = unseen[0]
    p1, l1 = _stream(tiny_eset, batch, [])
    p2, l2 = _stream(tiny_eset, batch, [1, 7, 100, len(batch) // 2, len(batch) - 3])
    assert np.allclose(p1, p2, atol=1e-5)
    assert np.array_equal(l1, l2)


def test_deterministic_with_a_seed(tiny_eset_data, unseen):
    # both trained here: the shared fixture may have been trained under another torch thread
    # count (other tests change it), and training is reproducible per thread count only
    first, again = ESeT(TINY), ESeT(TINY)
    first.learn_many(tiny_eset_data)
    again.learn_many(tiny_eset_data)
    p1, _ = _stream(first, unseen[0], [])
    p2, _ = _stream(again, unseen[0], [])
    assert np.array_equal(p1, p2)
    assert again.threshold == first.threshold


def test_rounds_recorded_and_selector_filters(tiny_eset):
    rounds = [h for h in tiny_eset.history if "round" in h]
    assert rounds and all(h["kept"] <= h["active"] for h in rounds)
    assert all(h["t_m"] is not None for h in rounds)


def test_noselector_keeps_every_pseudo_label(tiny_eset_data):
    from dataclasses import replace

    model = ESeT(replace(TINY, selector=False, rounds=1))
    model.learn_many(tiny_eset_data)
    rounds = [h for h in model.history if "round" in h]
    assert rounds and all(h["kept"] == h["active"] for h in rounds)


def test_save_load_round_trip(tmp_path, tiny_eset, unseen):
    tiny_eset.save(tmp_path / "m", {"metrics": {"f1": 0.5}})
    back = ESeT.load(tmp_path / "m")
    assert back.classes == tiny_eset.classes and back.threshold == tiny_eset.threshold
    p1, l1 = _stream(tiny_eset, unseen[0], [])
    p2, l2 = _stream(back, unseen[0], [])
    assert np.allclose(p1, p2, atol=1e-6) and np.array_equal(l1, l2)
    assert back.card_data["metrics"]["f1"] == 0.5
    assert back.card_data["feature_config"]["n_bytes"] == 64


def test_adapt_yields_a_site_model(tiny_eset_data, tiny_eset, unseen):
    from jixiaoan.model.eset_adapt import adapt

    site, _ = unseen
    until = float(site.ts.min() + 50.0 - site.ts.min())
    out = adapt(tiny_eset, site, tiny_eset_data, until_s=until, rounds=1, mode="retrain")
    assert out is not tiny_eset and out.kitnet is not tiny_eset.kitnet
    assert out.info["site_packets"] == int((site.ts <= site.ts.min() + until).sum())
    assert out.history and out.history[0]["active"] > 0
    v = out.predict_many(site)
    assert np.all((v.malicious_prob >= 0) & (v.malicious_prob <= 1))
    alone = adapt(tiny_eset, site, None, until_s=until, rounds=1, mode="retrain")  # no corpus
    assert alone.info["labelled_files"] == 0


def test_benign_fpr_calibration_takes_the_benign_quantile():
    """``calib_benign_fpr``: the threshold is the lowest grid value at or above the benign
    scores' upper quantile, whatever the attacks in the hold-out (or none at all)."""
    from dataclasses import replace

    benign = np.linspace(0.0, 0.5, 101) + 0.002  # 1 - P(benign) of 101 benign packets
    attack = np.full(20, 0.2)  # attacks scored low: an F1 rule would go down to them
    scores = np.concatenate([benign, attack])
    model = ESeT(replace(TINY, calib_benign_fpr=0.1))
    model._predict_file = lambda f: np.stack([1.0 - f, f], axis=1)
    targets = [np.r_[np.zeros(101, np.int64), np.ones(20, np.int64)]]
    thr, info = model.calibrate([scores], targets)
    assert thr == 0.5  # the 0.9 quantile is 0.452; the grid steps by 0.05
    assert info["benign_fpr"] == pytest.approx(1 / 101)  # only 0.502 is at or above 0.5
    only_benign, _ = model.calibrate([benign], [np.zeros(101, np.int64)])
    assert only_benign == 0.5
    model.config = replace(model.config, calib_benign_fpr=0.0)  # the F1 rule for contrast
    assert model.calibrate([scores], targets)[0] < 0.45  # F1 wants the attacks at 0.2
    assert model.calibrate([benign], [np.zeros(101, np.int64)])[0] == 0.5
