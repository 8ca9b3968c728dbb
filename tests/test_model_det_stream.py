"""Streaming DET inference equals offline inference whatever the batch cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.det import DET, DETConfig
from jixiaoan.model.det_stream import DETStream
from jixiaoan.model.det_synth import synthetic_stream
from jixiaoan.model.det_train import predict_proba


@pytest.fixture(scope="module")
def setup():
    batch, _ = synthetic_stream(150, seed=4)
    torch.manual_seed(0)
    model = DET(DETConfig(n_classes=3)).eval()
    return model, batch, predict_proba(model, batch)


def stream(model: DET, batch: FeatureBatch, cuts: np.ndarray, **kw) -> np.ndarray:
    s = DETStream(model, **{"threads": 1, **kw})
    bounds = np.concatenate([[0], np.sort(cuts), [len(batch)]])
    return np.concatenate(
        [s.predict_proba(batch.take(np.arange(a, b))) for a, b in zip(bounds[:-1], bounds[1:])]
    )


@pytest.mark.parametrize(("engine", "threads"), [("numba", 1), ("torch", 1), ("numba", 2)])
@pytest.mark.parametrize("n_cuts", [0, 3, 40, "every"])
def test_stream_equals_offline(setup, n_cuts, engine, threads):
    model, batch, offline = setup
    n = len(batch)
    if n_cuts == "every":
        cuts = np.arange(1, n)
    else:
        cuts = np.random.default_rng(n_cuts).choice(np.arange(1, n), n_cuts, replace=False)
    out = stream(model, batch, cuts, engine=engine, threads=threads)
    assert out.shape == offline.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, offline, atol=1e-5)


def test_order_of_other_sessions_in_a_batch_does_not_matter(setup):
    model, batch, offline = setup
    # reorder packets inside a batch, keeping each session's own order
    rng = np.random.default_rng(1)
    key = rng.random(batch.session.max() + 1)[batch.session]
    perm = np.lexsort((np.arange(len(batch)), key))
    out = DETStream(model, threads=1).predict_proba(batch.take(perm))
    np.testing.assert_allclose(out, offline[perm], atol=1e-5)


def test_unknown_engine_is_refused(setup):
    with pytest.raises(ValueError):
        DETStream(setup[0], threads=1, engine="onnx")


def test_reset_forgets_context(setup):
    model, batch, offline = setup
    s = DETStream(model, threads=1)
    s.predict_proba(batch)
    assert s.n_sessions == len(np.unique(batch.session))
    s.reset()
    assert s.n_sessions == 0
    np.testing.assert_allclose(s.predict_proba(batch), offline, atol=1e-5)


def test_session_cap_evicts_least_recently_used(setup):
    model, batch, offline = setup
    half = len(batch) // 2
    s = DETStream(model, threads=1, max_sessions=10)
    s.predict_proba(batch.take(np.arange(half)))
    assert s.n_sessions <= max(10, len(np.unique(batch.session[:half])))
    s.predict_proba(batch.take(np.arange(half, len(batch))))
    assert s.n_sessions == len(np.unique(batch.session[half:]))
    # within one batch context is complete, so a batch of one session stays exact
    sid = batch.session[0]
    idx = np.flatnonzero(batch.session == sid)
    s2 = DETStream(model, threads=1, max_sessions=1)
    np.testing.assert_allclose(s2.predict_proba(batch.take(idx)), offline[idx], atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_cap_bounds_sessions_over_many_batches(setup, threads):
    model, _, _ = setup
    s = DETStream(model, threads=threads, max_sessions=50)
    for k in range(5):
        b, _ = synthetic_stream(40, seed=20 + k, first_session=1000 * k)
        s.predict_proba(b)
        assert s.n_sessions <= 50


def test_idle_sessions_are_dropped(setup):
    model, batch, offline = setup
    s = DETStream(model, threads=1, idle_s=1.0)
    first = batch.take(np.arange(10))
    s.predict_proba(first)
    later = batch.take(np.arange(10, 20))
    later.ts = later.ts + 1000.0
    later.session = later.session + 10_000  # all new sessions
    s.predict_proba(later)
    assert s.n_sessions == len(np.unique(later.session))


def test_evicted_session_restarts_without_context(setup):
    model, batch, offline = setup
    sid = np.bincount(batch.session).argmax()
    idx = np.flatnonzero(batch.session == sid)
    s = DETStream(model, threads=1, max_sessions=1)
    s.predict_proba(batch.take(idx[:5]))
    other = batch.take(np.flatnonzero(batch.session != sid)[:3])
    s.predict_proba(other)  # evicts sid
    restarted = s.predict_proba(batch.take(idx[5:6]))
    fresh = DETStream(model, threads=1).predict_proba(batch.take(idx[5:6]))
    np.testing.assert_allclose(restarted, fresh, atol=1e-6)
    assert np.abs(restarted - offline[idx[5:6]]).max() > 1e-5
