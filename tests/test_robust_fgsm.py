"""FGSM on DET frequency features: eps = 0 is the clean run, steps bounded by eps."""

from __future__ import annotations

import numpy as np
import pytest
from test_model_eset_support import synthetic_training

from jixiaoan.model.det_train import predict_proba
from jixiaoan.model.eset import ESeT, ESeTConfig
from jixiaoan.model.evaluate import binary_metrics, predict_files
from jixiaoan.model.robust_fgsm import fgsm_files, fgsm_perturb, malicious_loss_gradient

TINY = ESeTConfig(
    rounds=1, pretrain_epochs=3, round_epochs=1, pool_max=1500, train_max=1500,
    kitnet_max=2000, kitnet_epochs=1, kitnet_min_steps=10, calib_share=0.0,
    det={"d_model": 16, "n_heads": 2, "d_ff": 32},
)


@pytest.fixture(scope="module")
def setup():
    data = synthetic_training(n_files=4, sessions=40, fraction=0.5, seed=0)
    model = ESeT(TINY)
    model.learn_many(data)
    truth = [np.asarray(y) > 0 for y in data.labels]
    return model, data.files, truth


def test_eps_zero_reproduces_clean_scores_exactly(setup):
    model, files, truth = setup
    clean_s, clean_p, _ = predict_files(model, files)
    out = fgsm_files(model.det, files, truth, [0.0, 0.05])
    s0, p0, _ = predict_files(model, out[0.0])
    for a, b in zip(clean_s, s0):
        np.testing.assert_array_equal(a, b)
    y = np.concatenate(truth)
    assert binary_metrics(y, np.concatenate(p0)) == binary_metrics(y, np.concatenate(clean_p))
    s5, _, _ = predict_files(model, out[0.05])
    assert any(not np.array_equal(a, b) for a, b in zip(clean_s, s5))


@pytest.mark.parametrize("mode", ["relative", "range"])
@pytest.mark.parametrize("eps", [0.01, 0.1])
def test_perturbation_bounded_by_eps_and_only_malicious(setup, mode, eps):
    model, files, truth = setup
    f, y = files[0], truth[0]
    assert y.any() and (~y).any()
    adv = fgsm_perturb(model.det, f, y, eps, mode)
    delta = np.abs(adv.freq.astype(np.float64) - f.freq.astype(np.float64))
    if mode == "relative":
        bound = eps * np.abs(f.freq.astype(np.float64))
    else:
        bound = np.broadcast_to(eps / model.det.freq_scale.numpy().astype(np.float64), delta.shape)
    assert np.all(delta <= bound * (1 + 1e-5) + 1e-6)
    assert np.all(delta[~y] == 0)
    assert delta[y].max() > 0
    np.testing.assert_array_equal(adv.byte_idx, f.byte_idx)
    np.testing.assert_array_equal(adv.afterimage, f.afterimage)


def test_gradient_step_raises_the_loss_for_a_small_eps(setup):
    model, files, truth = setup
    f, y = files[0], truth[0]
    grad = malicious_loss_gradient(model.det, f, y)
    assert np.abs(grad[y]).sum() > 0 and np.all(grad[~y] == 0)

    def loss(batch):
        p = predict_proba(model.det, batch)
        return float(-np.log(np.maximum(1.0 - p[y, 0], 1e-30)).sum())

    up = fgsm_perturb(model.det, f, y, 1e-3, "range", grad)
    assert loss(up) > loss(f)
