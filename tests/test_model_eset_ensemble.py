"""The seed ensemble ``eset-x<K>``: the Detector contract, its members, its name parsing."""

from __future__ import annotations

import numpy as np
import pytest
from test_model_eset_support import CLASSES, TINY_ESET, synthetic_files

from jixiaoan.model.eset import ESeT
from jixiaoan.model.eset_ensemble import MEMBER_SEED_STEP, ESeTEnsemble, ensemble_size
from jixiaoan.model.evaluate import make_detector
from jixiaoan.model.verdict import Detector


@pytest.fixture(scope="module")
def unseen():
    files, _ = synthetic_files(1, 60, seed=78)
    return files[0]


@pytest.fixture(scope="module")
def pair(tiny_eset_data):
    """A 2-member ensemble and a plain ESeT with member 0's seed, trained side by side."""
    ens = ESeTEnsemble(TINY_ESET, members=2)
    ens.learn_many(tiny_eset_data)
    plain = ESeT(TINY_ESET)
    plain.learn_many(tiny_eset_data)
    return ens, plain


def _stream(model, batch, cuts):
    model.reset()
    edges = [0, *cuts, len(batch)]
    parts = [model.predict_many(batch.take(slice(a, b))) for a, b in zip(edges[:-1], edges[1:])]
    return (np.concatenate([p.malicious_prob for p in parts]),
            np.concatenate([p.label for p in parts]))  # fmt: skip


def test_contract_and_members(pair, unseen):
    ens, plain = pair
    assert isinstance(ens, Detector) and ens.classes == CLASSES
    assert [m.config.seed for m in ens.members] == [0, MEMBER_SEED_STEP]
    assert all(m.kitnet is ens.kitnet for m in ens.members)  # one KitNET, fitted once
    assert ens.threshold == pytest.approx(np.mean([m.threshold for m in ens.members]))
    ens.reset()
    v = ens.predict_many(unseen)
    assert len(v) == len(unseen) and v.malicious_prob.dtype == np.float32
    assert np.all((v.malicious_prob >= 0) & (v.malicious_prob <= 1))
    assert v.label.min() >= 0 and v.label.max() < len(CLASSES)
    assert np.array_equal(v.is_malicious, v.malicious_prob >= ens.threshold)
    # the verdict is the members' mean; member 0 is the plain ESeT of the same seed
    for m in ens.members:
        m.reset()
    probs = [m.predict_proba_many(unseen) for m in ens.members]
    np.testing.assert_allclose(v.malicious_prob, 1 - np.mean(probs, 0)[:, 0], atol=1e-6)
    plain.reset()
    np.testing.assert_array_equal(plain.predict_proba_many(unseen), probs[0])
    assert not np.allclose(probs[0], probs[1])  # the members differ
    assert len(ens.predict_many(unseen.take(np.zeros(0, np.int64)))) == 0


def test_batch_cuts_and_order_do_not_change_verdicts(pair, unseen):
    ens, _ = pair
    p1, l1 = _stream(ens, unseen, [])
    p2, l2 = _stream(ens, unseen, [1, 9, len(unseen) // 2, len(unseen) - 2])
    np.testing.assert_allclose(p1, p2, atol=1e-5)
    assert np.array_equal(l1, l2)
    # interleave the sessions differently, keeping each session's own order
    key = np.random.default_rng(3).random(unseen.session.max() + 1)[unseen.session]
    perm = np.lexsort((np.arange(len(unseen)), key))
    p3, l3 = _stream(ens, unseen.take(perm), [len(unseen) // 3])
    np.testing.assert_allclose(p3, p1[perm], atol=1e-5)
    assert np.array_equal(l3, l1[perm])


def test_deterministic_with_a_seed(tiny_eset_data, unseen):
    out = []
    for _ in range(2):
        ens = ESeTEnsemble(TINY_ESET, members=2)
        ens.learn_many(tiny_eset_data)
        out.append(_stream(ens, unseen, []))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_names_and_untrained_use():
    assert ensemble_size("eset-x3") == 3 and ensemble_size("eset-x12") == 12
    assert ensemble_size("eset-x1") is None and ensemble_size("eset-xx") is None
    assert ensemble_size("eset") is None
    assert isinstance(make_detector("eset-x4", TINY_ESET), ESeTEnsemble)
    with pytest.raises(ValueError, match="eset-x<K>"):
        make_detector("eset-x1", TINY_ESET)
    with pytest.raises(ValueError):
        ESeTEnsemble(TINY_ESET, members=1)
    with pytest.raises(RuntimeError):
        ESeTEnsemble(TINY_ESET).predict_many(synthetic_files(1, 5)[0][0])
