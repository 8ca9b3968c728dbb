"""ESeT's Detector contract on synthetic features: seeds, probabilities, batch cuts, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from test_model_eset_support import CLASSES, synthetic_files, synthetic_training

from jixiaoan.model.eset import ESeT, ESeTConfig
from jixiaoan.model.verdict import Detector

TINY = ESeTConfig(
    rounds=2, pretrain_epochs=2, round_epochs=1, pool_max=1500, train_max=1500,
    kitnet_max=2000, kitnet_epochs=1, kitnet_min_steps=10,
    det={"d_model": 16, "n_heads": 2, "d_ff": 32},
)


@pytest.fixture(scope="module")
def data():
    return synthetic_training(n_files=5, sessions=60, fraction=0.3, seed=0)


@pytest.fixture(scope="module")
def trained(data):
    model = ESeT(TINY)
    model.learn_many(data)
    return model


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


def test_is_a_detector_with_probabilities_in_range(trained, unseen):
    assert isinstance(trained, Detector)
    assert trained.classes == CLASSES
    v = trained.predict_many(unseen[0])
    assert len(v) == len(unseen[0])
    assert v.malicious_prob.dtype == np.float32
    assert np.all((v.malicious_prob >= 0) & (v.malicious_prob <= 1))
    assert v.label.min() >= 0 and v.label.max() < len(CLASSES)
    assert v.anomaly is not None and np.isfinite(v.anomaly).all()
    assert np.array_equal(v.is_malicious, v.malicious_prob >= trained.threshold)


def test_batch_cut_does_not_change_verdicts(trained, unseen):
    batch = unseen[0]
    p1, l1 = _stream(trained, batch, [])
    p2, l2 = _stream(trained, batch, [1, 7, 100, len(batch) // 2, len(batch) - 3])
    assert np.allclose(p1, p2, atol=1e-5)
    assert np.array_equal(l1, l2)


def test_deterministic_with_a_seed(data, trained, unseen):
    again = ESeT(TINY)
    again.learn_many(data)
    p1, _ = _stream(trained, unseen[0], [])
    p2, _ = _stream(again, unseen[0], [])
    assert np.array_equal(p1, p2)
    assert again.threshold == trained.threshold


def test_rounds_recorded_and_selector_filters(trained):
    rounds = [h for h in trained.history if "round" in h]
    assert rounds and all(h["kept"] <= h["active"] for h in rounds)
    assert all(h["t_m"] is not None for h in rounds)


def test_noselector_keeps_every_pseudo_label(data):
    from dataclasses import replace

    model = ESeT(replace(TINY, selector=False, rounds=1))
    model.learn_many(data)
    rounds = [h for h in model.history if "round" in h]
    assert rounds and all(h["kept"] == h["active"] for h in rounds)


def test_save_load_round_trip(tmp_path, trained, unseen):
    trained.save(tmp_path / "m", {"metrics": {"f1": 0.5}})
    back = ESeT.load(tmp_path / "m")
    assert back.classes == trained.classes and back.threshold == trained.threshold
    p1, l1 = _stream(trained, unseen[0], [])
    p2, l2 = _stream(back, unseen[0], [])
    assert np.allclose(p1, p2, atol=1e-6) and np.array_equal(l1, l2)
    assert back.card_data["metrics"]["f1"] == 0.5
    assert back.card_data["feature_config"]["n_bytes"] == 64


def test_adapt_yields_a_site_model(data, trained, unseen):
    from jixiaoan.model.eset_adapt import adapt

    site, _ = unseen
    until = float(site.ts.min() + 50.0 - site.ts.min())
    out = adapt(trained, site, data, until_s=until, rounds=1)
    assert out is not trained and out.kitnet is not trained.kitnet
    assert out.info["site_packets"] == int((site.ts <= site.ts.min() + until).sum())
    assert out.history and out.history[0]["active"] > 0
    v = out.predict_many(site)
    assert np.all((v.malicious_prob >= 0) & (v.malicious_prob <= 1))
    alone = adapt(trained, site, None, until_s=until, rounds=1)  # no labelled corpus
    assert alone.info["labelled_files"] == 0
