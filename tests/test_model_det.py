"""DET model, training loop and offline inference on synthetic FeatureBatch data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jixiaoan.model.det import DET, DETConfig, session_order
from jixiaoan.model.det_synth import synthetic_stream
from jixiaoan.model.det_train import make_sequences, predict_proba, train_det


@pytest.fixture(autouse=True)
def one_thread():
    """The dev machine is shared: one intra-op thread avoids thread-barrier stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return synthetic_stream(120, seed=3)


def small_model(seed: int = 0, **kw) -> DET:
    torch.manual_seed(seed)
    return DET(DETConfig(n_classes=3, **kw))


def test_config_round_trip():
    cfg = DETConfig(n_classes=5, freq_mask=(1, 0, 1, 1, 1, 1, 1, 1, 0))
    again = DETConfig.from_dict(cfg.to_dict())
    assert again == DETConfig(n_classes=5, freq_mask=(1.0, 0, 1, 1, 1, 1, 1, 1, 0.0))
    assert again.context == 14
    with pytest.raises(ValueError):
        DET(DETConfig(freq_mask=(1.0, 0.0)))


def test_session_order_and_neighbours():
    order, rank, starts = session_order(np.array([7, 3, 7, 3, 7, 9]))
    assert order.tolist() == [1, 3, 0, 2, 4, 5]
    assert rank.tolist() == [0, 1, 0, 1, 2, 0]
    assert starts.tolist() == [0, 2, 5]


def test_make_sequences_keeps_files_apart(data):
    batch, _ = data
    tok = make_sequences([batch, batch])
    n = len(batch)
    assert sorted(tok.source.tolist()) == list(range(2 * n))
    # the same session id in two files is two sessions: ranks restart
    assert tok.rank.max() == np.bincount(batch.session).max() - 1


def test_table_lookup_equals_plain_embedding(data):
    batch, _ = data
    model = small_model()
    b = torch.from_numpy(batch.byte_idx.astype(np.int64))
    with torch.no_grad():
        plain = model.embed_bytes(b)
        table = model.embed_bytes_table(b, model.lookup_table())
    assert plain.shape == (len(batch), 64)
    torch.testing.assert_close(table, plain, rtol=1e-5, atol=1e-5)


def test_predict_proba_shapes_and_range(data):
    batch, _ = data
    p = predict_proba(small_model(), batch)
    assert p.shape == (len(batch), 3) and p.dtype == np.float32
    assert (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)


def test_verdict_independent_of_chunking_and_other_sessions(data):
    batch, _ = data
    model = small_model()
    full = predict_proba(model, batch)
    # small chunks force context tokens to be recomputed
    np.testing.assert_allclose(predict_proba(model, batch, chunk_tokens=37), full, atol=1e-5)
    # keep one session only: its packets' verdicts do not change
    sid = np.bincount(batch.session).argmax()
    idx = np.flatnonzero(batch.session == sid)
    np.testing.assert_allclose(predict_proba(model, batch.take(idx)), full[idx], atol=1e-5)
    # the earlier packets matter (the model is not packet-local): dropping them changes verdicts
    alone = predict_proba(model, batch.take(idx[-1:]))
    assert np.abs(alone - full[idx[-1:]]).max() > 1e-4


def test_training_is_deterministic(data):
    batch, labels = data
    runs = []
    for _ in range(2):
        model = small_model(seed=1)
        hist = train_det(
            model, [batch], [labels], None, epochs=1, lr=1e-3, seed=5, batch_tokens=512
        )
        runs.append((hist["loss"], predict_proba(model, batch)))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    other = small_model(seed=1)
    train_det(other, [batch], [labels], None, epochs=1, lr=1e-3, seed=6, batch_tokens=512)
    assert not np.array_equal(predict_proba(other, batch), runs[0][1])


def test_ignored_targets_and_weights_do_not_train(data):
    batch, labels = data
    model = small_model()
    before = [p.detach().clone() for p in model.parameters()]
    hist = train_det(model, [batch], [np.full(len(batch), -1)], None, epochs=1, lr=1e-2, seed=0)
    assert hist["packets"] == 0
    hist = train_det(model, [batch], [labels], [np.zeros(len(batch))], epochs=1, lr=1e-2, seed=0)
    assert hist["packets"] == 0
    for a, b in zip(before, model.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach())


def test_learns_byte_pattern_and_timing_classes():
    train, y_train = synthetic_stream(300, seed=10)
    test, y_test = synthetic_stream(200, seed=11)
    model = small_model(seed=0)
    hist = train_det(model, [train], [y_train], None, epochs=8, lr=3e-3, seed=0, batch_tokens=256)
    assert hist["loss"][-1] < hist["loss"][0]
    pred = predict_proba(model, test).argmax(1)
    for cls in range(3):
        accuracy = (pred == y_test)[y_test == cls].mean()
        assert accuracy > 0.9, (cls, accuracy)


def test_state_dict_round_trip_reproduces_verdicts(data):
    batch, labels = data
    model = small_model(seed=2, freq_mask=(1, 1, 1, 1, 0, 1, 1, 1, 1))
    train_det(model, [batch], [labels], None, epochs=1, lr=1e-3, seed=0, batch_tokens=512)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert bool(state["freq_fitted"]) and state["freq_mask"][4] == 0
    again = DET(DETConfig.from_dict(model.cfg.to_dict()))
    again.load_state_dict(state)
    np.testing.assert_array_equal(predict_proba(again, batch), predict_proba(model, batch))


def test_masked_frequency_bin_has_no_influence(data):
    batch, _ = data
    model = small_model(freq_mask=(1, 1, 0, 1, 1, 1, 1, 1, 1))
    changed = batch.take(np.arange(len(batch)))
    changed.freq = changed.freq.copy()
    changed.freq[:, 2] += 50.0
    np.testing.assert_allclose(
        predict_proba(model, changed), predict_proba(model, batch), atol=1e-6
    )
    changed.freq[:, 3] += 50.0  # an unmasked bin does change verdicts
    assert np.abs(predict_proba(model, changed) - predict_proba(model, batch)).max() > 1e-4


def test_wider_frequency_fusion_round_trips_and_streams(data):
    """``freq_width`` > 1 gives each packet several frequency weights; a saved state loads
    back, streaming equals offline, masked bins still have no influence."""
    from jixiaoan.model.det_stream import DETStream

    batch, labels = data
    model = small_model(seed=3, freq_width=4, freq_mask=(1, 1, 0, 1, 1, 1, 1, 1, 1))
    assert tuple(model.freq_weight.shape) == (4, 9) and tuple(model.freq_a.shape) == (4, 64)
    train_det(model, [batch], [labels], None, epochs=1, lr=1e-3, seed=0, batch_tokens=512)
    again = DET(DETConfig.from_dict(model.cfg.to_dict()))
    again.load_state_dict(model.state_dict())
    offline = predict_proba(again.eval(), batch)
    np.testing.assert_array_equal(offline, predict_proba(model.eval(), batch))
    streamed = DETStream(again, threads=1).predict_proba(batch)
    np.testing.assert_allclose(streamed, offline, atol=1e-5)
    changed = batch.take(np.arange(len(batch)))
    changed.freq = changed.freq.copy()
    changed.freq[:, 2] += 50.0
    np.testing.assert_allclose(predict_proba(again, changed), offline, atol=1e-6)
    changed.freq[:, 5] += 50.0
    assert np.abs(predict_proba(again, changed) - offline).max() > 1e-4
    with pytest.raises(ValueError):
        DET(DETConfig(freq_width=0))
