"""KitNET: feature mapper, anomaly ranking on synthetic data, determinism, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jixiaoan.model.kitnet import KERNEL_MAX_ROWS, KitNET, hidden_size
from jixiaoan.model.kitnet_mapper import correlation_distance, map_features
from jixiaoan.model.persist import ModelFileError, load_model_dir, save_model_dir

FAST = {"threads": 1, "min_steps": 150, "batch_size": 512}


def blocks(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """100 features in 10 blocks, each block driven by 2 latent factors plus small noise;
    ``shift`` moves every sample off the learnt correlations (alternating signs)."""
    rng = np.random.default_rng(seed)
    loadings = np.random.default_rng(0).normal(size=(10, 2, 10))
    z = rng.normal(size=(n, 10, 2))
    X = np.einsum("nbk,bkf->nbf", z, loadings).reshape(n, 100) + 0.2 * rng.normal(size=(n, 100))
    X += shift * np.where(np.arange(100) % 2 == 0, 1.0, -1.0)
    return X.astype(np.float32)


def check_partition(groups: list[np.ndarray], n_features: int, max_group: int) -> None:
    assert all(1 <= len(g) <= max_group for g in groups)
    assert np.array_equal(np.sort(np.concatenate(groups)), np.arange(n_features))


@pytest.mark.parametrize("max_group", [1, 3, 10])
def test_mapper_groups_are_small_and_cover_every_feature_once(max_group: int) -> None:
    X = blocks(2000, 1)
    groups = map_features((X - X.min(0)) / np.ptp(X, 0), max_group)
    check_partition(groups, 100, max_group)


def test_mapper_finds_correlated_blocks() -> None:
    X = blocks(3000, 1)
    groups = map_features((X - X.min(0)) / np.ptp(X, 0), 10)
    expected = [tuple(range(b * 10, b * 10 + 10)) for b in range(10)]
    assert sorted(tuple(g) for g in groups) == expected


def test_mapper_puts_constant_features_in_their_own_groups() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 30))
    X[:, [4, 11, 12]] = 7.0
    D, constant = correlation_distance(X)
    assert np.flatnonzero(constant).tolist() == [4, 11, 12]
    assert np.all(np.isfinite(D))
    groups = map_features(X, 10)
    check_partition(groups, 30, 10)
    assert [4, 11, 12] in [g.tolist() for g in groups]


def test_signed_and_absolute_distance_differ_on_anticorrelated_features() -> None:
    rng = np.random.default_rng(4)
    a = rng.normal(size=1000)
    X = np.stack([a, -a, rng.normal(size=1000)], axis=1)
    assert correlation_distance(X, signed=False)[0][0, 1] == pytest.approx(0.0, abs=1e-9)
    assert correlation_distance(X, signed=True)[0][0, 1] == pytest.approx(2.0, abs=1e-9)


def test_hidden_size_is_ceil_of_ratio() -> None:
    assert [hidden_size(g) for g in (1, 2, 4, 8, 10)] == [1, 2, 3, 6, 8]


@pytest.fixture(scope="module")
def fitted() -> KitNET:
    return KitNET(seed=0, epochs=3, **FAST).fit(blocks(4000, 1))


def test_anomalies_score_higher(fitted: KitNET) -> None:
    normal, shifted = fitted.score(blocks(1000, 2)), fitted.score(blocks(1000, 3, shift=0.3))
    assert normal.dtype == np.float32 and normal.shape == (1000,)
    auc = roc_auc_score(np.r_[np.zeros(1000), np.ones(1000)], np.r_[normal, shifted])
    assert auc > 0.9
    check_partition(fitted.groups, 100, 10)


def test_same_seed_same_scores_other_seed_differs(fitted: KitNET) -> None:
    X, probe = blocks(4000, 1), blocks(200, 5)
    again = KitNET(seed=0, epochs=3, **FAST).fit(X)
    np.testing.assert_array_equal(again.score(probe), fitted.score(probe))
    other = KitNET(seed=1, epochs=3, **FAST).fit(X)
    assert not np.array_equal(other.score(probe), fitted.score(probe))


def test_score_is_row_wise(fitted: KitNET) -> None:
    X = blocks(300, 6)
    full = fitted.score(X)
    parts = np.concatenate([fitted.score(X[:7]), fitted.score(X[7:])])
    np.testing.assert_allclose(parts, full, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fitted.score(X[::-1]), full[::-1], rtol=1e-5, atol=1e-7)


def test_non_finite_and_out_of_range_inputs_give_finite_scores(fitted: KitNET) -> None:
    X = blocks(4, 7)
    X[0, 3], X[1, 5], X[2, 9] = np.nan, np.inf, 1e30
    s = fitted.score(X)
    assert np.all(np.isfinite(s))
    assert s[2] > fitted.score(blocks(4, 7))[2]


def test_constant_training_feature_flags_later_change() -> None:
    X = blocks(2000, 1)
    X[:, 50] = 3.0
    model = KitNET(seed=0, epochs=2, **FAST).fit(X)
    probe = blocks(200, 8)
    probe[:, 50] = 3.0
    moved = probe.copy()
    moved[:, 50] = 5.0
    assert np.all(model.score(moved) > model.score(probe))


def test_save_load_round_trip(fitted: KitNET, tmp_path) -> None:
    fitted.save(tmp_path / "m", card={"note": "test"})
    loaded = KitNET.load(tmp_path / "m")
    probe = blocks(100, 9)
    np.testing.assert_array_equal(loaded.score(probe), fitted.score(probe))
    assert [g.tolist() for g in loaded.groups] == [g.tolist() for g in fitted.groups]
    assert loaded.config == fitted.config


def test_load_rejects_inconsistent_groups(fitted: KitNET, tmp_path) -> None:
    tensors, config = fitted.state()
    tensors["kitnet.mapper.groups.values"] = tensors["kitnet.mapper.groups.values"].copy()
    tensors["kitnet.mapper.groups.values"][0] = tensors["kitnet.mapper.groups.values"][1]
    save_model_dir(tmp_path / "bad", tensors, {"kitnet": config})
    with pytest.raises(ModelFileError, match="cover"):
        KitNET.load(tmp_path / "bad")
    del tensors["kitnet.output.weight"]
    save_model_dir(tmp_path / "bad2", tensors, {"kitnet": config})
    with pytest.raises(ModelFileError):
        KitNET.load(tmp_path / "bad2")
    assert load_model_dir(tmp_path / "bad2")[1]["kitnet"] == config


def test_unfitted_and_wrong_width_are_refused(fitted: KitNET) -> None:
    with pytest.raises(RuntimeError):
        KitNET().score(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError):
        fitted.score(np.zeros((2, 99), np.float32))


def test_log_scale_option_changes_scores_and_survives_save(tmp_path) -> None:
    X = blocks(2000, 1) * 50.0
    plain = KitNET(seed=0, epochs=1, **FAST).fit(X)
    logged = KitNET(seed=0, epochs=1, log_scale=True, **FAST).fit(X)
    probe = blocks(50, 2) * 50.0
    assert not np.allclose(plain.score(probe), logged.score(probe))
    assert logged.norm_span.max() < 20  # spans of log-scaled values, not of raw ones
    logged.save(tmp_path / "m")
    again = KitNET.load(tmp_path / "m")
    assert again.config.log_scale
    np.testing.assert_array_equal(again.score(probe), logged.score(probe))


@pytest.mark.parametrize("log_scale", [False, True])
def test_fused_kernel_matches_the_torch_modules(log_scale: bool) -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(0, 1, (600, 23)) * rng.choice([1.0, 50.0, 1e4], size=23)
    model = KitNET(max_group=5, seed=3, log_scale=log_scale).fit(X, epochs=2)
    Y = rng.normal(0, 3, (300, 23)) * 100
    Y[0, 0], Y[1, 1], Y[2, 2] = np.nan, np.inf, -np.inf
    fused, ref = model.score_fused(Y), model.score_torch(Y)
    assert model.score(Y).dtype == np.float32 and model.score(Y).shape == (300,)
    np.testing.assert_allclose(model.score(Y), ref, rtol=2e-4, atol=1e-6)
    assert np.isfinite(fused).all()
    np.testing.assert_allclose(fused, ref, rtol=2e-4, atol=1e-6)
    assert model.score(Y[:0]).shape == (0,)
    small = Y[:KERNEL_MAX_ROWS]  # the fused kernel up to KERNEL_MAX_ROWS, the dense form above
    np.testing.assert_allclose(model.score(small), fused[:KERNEL_MAX_ROWS], rtol=1e-6)
    np.testing.assert_allclose(model.score_dense(Y), ref, rtol=2e-4, atol=1e-6)
    big = np.vstack([Y] * 4)
    assert len(big) > KERNEL_MAX_ROWS
    np.testing.assert_allclose(model.score(big), np.tile(fused, 4), rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(model.score(big), np.tile(model.score_dense(Y), 4), rtol=1e-6)
    np.testing.assert_allclose(model.score_fused(big), np.tile(fused, 4), rtol=1e-6)
    # refitting drops the cached kernel arrays: scores follow the new weights
    model.fit(X[::-1].copy(), epochs=1)
    np.testing.assert_allclose(model.score(Y), model.score_torch(Y), rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(model.score_fused(Y), model.score_torch(Y), rtol=2e-4, atol=1e-6)
