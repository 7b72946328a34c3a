"""Learned additive latency model: recovers known per-choice costs; the prior helps with few samples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from nas.latency.additive import AdditiveLatencyModel

N_LAYERS, N_CHOICES = 6, 5


def one_hot(genes: np.ndarray) -> np.ndarray:
    out = np.zeros((genes.shape[0], N_LAYERS * N_CHOICES))
    out[np.arange(genes.shape[0])[:, None], np.arange(N_LAYERS) * N_CHOICES + genes] = 1.0
    return out


def true_costs(rng: np.random.Generator) -> np.ndarray:
    """Per-layer costs with the cheapest choice of each layer at 0 (the identifiable gauge)."""
    costs = rng.uniform(0.2, 3.0, (N_LAYERS, N_CHOICES))
    costs[np.arange(N_LAYERS), rng.integers(0, N_CHOICES, N_LAYERS)] = 0.0
    return costs.ravel()


def sample(rng: np.random.Generator, n: int, costs: np.ndarray, noise: float = 0.0):
    x = one_hot(rng.integers(0, N_CHOICES, (n, N_LAYERS)))
    y = x @ costs + 2.5
    return x, y * (1 + noise * rng.standard_normal(n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_known_per_choice_costs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    costs = true_costs(rng)
    x, y = sample(rng, 300, costs, noise=0.002)
    model = AdditiveLatencyModel().fit(x, y)
    np.testing.assert_allclose(model.coef_, costs, atol=0.05)
    assert model.intercept_ == pytest.approx(2.5, abs=0.1)
    assert model.alpha_ in AdditiveLatencyModel().alpha
    x_new, y_new = sample(rng, 100, costs)
    assert np.max(np.abs(model.predict(x_new) - y_new) / y_new) < 0.02


def test_prior_fills_in_what_ten_samples_cannot_tell() -> None:
    rng = np.random.default_rng(4)
    flops = rng.uniform(0.0, 50.0, N_LAYERS * N_CHOICES)  # e.g. MFLOPs per choice
    costs = 0.04 * flops  # latency proportional to FLOPs, 0.04 ms per MFLOP
    x, y = sample(rng, 10, costs, noise=0.01)
    x_test, y_test = sample(rng, 2000, costs)
    with_prior = AdditiveLatencyModel(prior=flops).fit(x, y)
    without = AdditiveLatencyModel().fit(x, y)
    assert with_prior.prior_scale_ == pytest.approx(0.04, rel=0.1)
    err_prior = np.median(np.abs(with_prior.predict(x_test) / y_test - 1))
    err_plain = np.median(np.abs(without.predict(x_test) / y_test - 1))
    assert err_prior < 0.02 < err_plain


def test_group_prior_shares_costs_across_layers() -> None:
    rng = np.random.default_rng(5)
    per_choice = np.array([0.0, 0.1, 1.0, 2.5, 0.4])
    costs = np.tile(per_choice, N_LAYERS)  # the same op costs the same on every layer
    x, y = sample(rng, 10, costs, noise=0.002)
    model = AdditiveLatencyModel(groups=np.tile(np.arange(N_CHOICES), N_LAYERS)).fit(x, y)
    assert model.group_costs_.shape == (N_CHOICES,)
    np.testing.assert_allclose(model.coef_, costs, atol=0.1)


def test_nonnegativity_is_a_setting() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(50, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 10
    assert np.all(AdditiveLatencyModel().fit(x, y).coef_ >= 0)
    signed = AdditiveLatencyModel(alpha=1e-8, nonnegative=False).fit(x, y)
    np.testing.assert_allclose(signed.coef_, [1.0, -2.0, 0.5], atol=1e-5)


def test_bad_structure_is_refused() -> None:
    x, y = np.eye(4), np.arange(4.0)
    with pytest.raises(ValueError, match="prior must hold 4"):
        AdditiveLatencyModel(prior=[1, 2]).fit(x, y)
    with pytest.raises(ValueError, match="groups must hold 4 integers"):
        AdditiveLatencyModel(groups=[0.5, 1, 2, 3]).fit(x, y)
    with pytest.raises(ValueError, match="alpha"):
        AdditiveLatencyModel(alpha=-1.0).fit(x, y)


def test_clone_and_determinism() -> None:
    rng = np.random.default_rng(7)
    x, y = sample(rng, 40, true_costs(rng))
    a = AdditiveLatencyModel(prior=np.ones(30)).fit(x, y)
    b = clone(a).fit(x, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


@parametrize_with_checks(
    [AdditiveLatencyModel(), AdditiveLatencyModel(nonnegative=False, alpha=1.0)]
)
def test_sklearn_estimator_contract(estimator, check) -> None:
    check(estimator)
