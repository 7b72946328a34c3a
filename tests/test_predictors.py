"""Estimators, metrics and NB201 features of the predictors package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.estimator_checks import parametrize_with_checks

from nas.benchmarks import nb201
from nas.benchmarks import nb201_features as F
from predictors import EnsemblePredictor, GBMPredictor, MLPPredictor, RidgeOneHot, metrics

# The estimators pass every applicable scikit-learn check, so no expected failures are listed.
CHECKED = [
    RidgeOneHot(),
    GBMPredictor(n_estimators=30, random_state=0),
    GBMPredictor(backend="hist", n_estimators=30, random_state=0),
    MLPPredictor(max_epochs=30, random_state=0),
    EnsemblePredictor([GBMPredictor(n_estimators=10), MLPPredictor(max_epochs=10)], n_members=1,
                      random_state=0),
]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)


def _regression(n: int = 120, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``seed`` of one fixed smooth function of ``d`` inputs, with a little noise."""
    w = np.random.default_rng(12345).normal(size=d)
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    return X, X @ w + np.sin(3 * X[:, 0]) + rng.normal(0, 0.05, n)


# ---------------------------------------------------------------- ridge


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ridge_recovers_an_additive_function(seed):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(6, 5)) * rng.uniform(0.1, 10)  # per-edge, per-op contributions
    offset = rng.uniform(-100, 100)

    def truth(genes):
        return offset + weights[np.arange(6), genes].sum(axis=1)

    train = rng.integers(0, 5, size=(300, 6))
    model = RidgeOneHot(alpha=1e-8).fit(nb201.one_hot(train), truth(train))
    test = rng.integers(0, 5, size=(200, 6))
    scale = np.abs(weights).max()
    np.testing.assert_allclose(model.predict(nb201.one_hot(test)), truth(test), atol=1e-5 * scale)
    # One-hot coefficients are identified up to a constant per edge: compare contrasts.
    coef = model.coef_.reshape(6, 5)
    np.testing.assert_allclose(coef - coef[:, :1], weights - weights[:, :1], atol=1e-5 * scale)


def test_ridge_auto_alpha_and_units():
    X, y = _regression()
    model = RidgeOneHot().fit(X, 1000 * y + 5)
    assert model.alpha_ in RidgeOneHot().alphas
    np.testing.assert_allclose(model.predict(X), X @ model.coef_ + model.intercept_)
    assert abs(metrics.kendall_tau(y, model.predict(X))) > 0.8
    with pytest.raises(ValueError, match="alpha"):
        RidgeOneHot(alpha="best").fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        RidgeOneHot(alpha=-1.0).fit(X, y)


# ---------------------------------------------------------------- GBM, MLP, ensemble

def test_gbm_backends_learn():
    X, y = _regression(200)
    Xt, yt = _regression(200, seed=1)
    for backend in ("gbr", "hist"):
        model = GBMPredictor(backend=backend, n_estimators=100, random_state=0).fit(X, y)
        assert metrics.spearman(yt, model.predict(Xt)) > 0.8
    with pytest.raises(ValueError, match="backend"):
        GBMPredictor(backend="xgboost").fit(X, y)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: GBMPredictor(n_estimators=30, random_state=s),
        lambda s: MLPPredictor(max_epochs=20, random_state=s),
        lambda s: EnsemblePredictor([GBMPredictor(n_estimators=10), MLPPredictor(max_epochs=10)],
                                    n_members=2, bootstrap=True, random_state=s),
    ],
    ids=["gbm", "mlp", "ensemble"],
)
def test_seeded_determinism(make):
    X, y = _regression()
    first = make(3).fit(X, y).predict(X)
    np.testing.assert_array_equal(first, make(3).fit(X, y).predict(X))
    assert not np.array_equal(first, make(4).fit(X, y).predict(X))
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(make(rng_a).fit(X, y).predict(X), make(rng_b).fit(X, y).predict(X))


def test_mlp_leaves_torch_global_state_alone():
    X, y = _regression(60)
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    MLPPredictor(max_epochs=5, random_state=0, n_threads=1).fit(X, y).predict(X)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.get_num_threads() == threads


def test_mlp_learns_and_early_stopping_modes():
    X, y = _regression(600, seed=2)
    Xt, yt = _regression(300, seed=3)
    model = MLPPredictor(max_epochs=60, random_state=0).fit(X, y)
    assert metrics.spearman(yt, model.predict(Xt)) > 0.9
    assert 1 <= model.best_epoch_ <= 60  # auto: 60 held out >= 50, so early stopping ran
    small = MLPPredictor(max_epochs=7, random_state=0).fit(X[:100], y[:100])
    assert small.best_epoch_ == 7  # auto: 10 held out < 50, trains max_epochs
    forced = MLPPredictor(max_epochs=40, patience=3, early_stopping=True, random_state=0)
    assert forced.fit(X[:100], y[:100]).best_epoch_ <= 40
    with pytest.raises(ValueError, match="early_stopping"):
        MLPPredictor(early_stopping="sometimes").fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        MLPPredictor(validation_fraction=1.5).fit(X, y)


def test_mlp_pretraining():
    X, y = _regression(40)
    rng = np.random.default_rng(0)
    U = rng.random((500, X.shape[1]))
    S = np.stack([U.sum(axis=1), U[:, 0] * U[:, 1]], axis=1)  # free statistics of unlabelled X
    plain = MLPPredictor(max_epochs=20, random_state=0).fit(X, y)
    pre = MLPPredictor(max_epochs=20, pretrain_epochs=5, random_state=0)
    pre.fit(X, y, X_pretrain=U, y_pretrain=S)
    assert pre.pretrained_ and not plain.pretrained_
    assert pre.predict(X).shape == (len(X),)
    assert not np.allclose(pre.predict(X), plain.predict(X))
    with pytest.raises(ValueError, match="both"):
        MLPPredictor().fit(X, y, X_pretrain=U)
    with pytest.raises(ValueError, match="features"):
        MLPPredictor().fit(X, y, X_pretrain=U[:, :3], y_pretrain=S)


def test_ensemble_mean_and_std():
    X, y = _regression(100)
    model = EnsemblePredictor(GBMPredictor(n_estimators=30), n_members=4, bootstrap=True,
                              random_state=0).fit(X, y)
    mean, std = model.predict(X[:25], return_std=True)
    assert mean.shape == std.shape == (25,)
    assert np.all(std > 0)
    np.testing.assert_array_equal(mean, model.predict(X[:25]))
    members = np.stack([m.predict(X[:25]) for m in model.estimators_])
    np.testing.assert_allclose(mean, members.mean(axis=0))
    np.testing.assert_allclose(std, members.std(axis=0))
    assert len(model.estimators_) == 4
    seeds = {m.random_state for m in model.estimators_}
    assert len(seeds) == 4


def test_ensemble_mix_weights_each_base_equally_and_routes_fit_params():
    X, y = _regression(60)
    mix = EnsemblePredictor([GBMPredictor(n_estimators=10), MLPPredictor(max_epochs=5)],
                            n_members=2, random_state=0)
    U = np.random.default_rng(1).random((200, X.shape[1]))
    mix.fit(X, y, X_pretrain=U, y_pretrain=U.sum(axis=1))  # only the MLPs take these
    assert [type(m).__name__ for m in mix.estimators_] == ["GBMPredictor"] * 2 + ["MLPPredictor"] * 2
    assert all(m.pretrained_ for m in mix.estimators_[2:])
    preds = np.stack([m.predict(X) for m in mix.estimators_])
    np.testing.assert_allclose(mix.predict(X), (preds[:2].mean(0) + preds[2:].mean(0)) / 2)
    with pytest.raises(ValueError, match="empty"):
        EnsemblePredictor([]).fit(X, y)
    with pytest.raises(ValueError, match="n_members"):
        EnsemblePredictor(n_members=0).fit(X, y)


def test_ensemble_default_is_gbm_plus_mlp():
    model = EnsemblePredictor(random_state=0, n_members=1)
    X, y = _regression(30)
    model.set_params(estimator=None).fit(X, y)
    assert [type(m).__name__ for m in model.estimators_] == ["GBMPredictor", "MLPPredictor"]


# ---------------------------------------------------------------- metrics

def test_rank_metrics():
    a = np.arange(10.0)
    assert metrics.kendall_tau(a, a) == pytest.approx(1.0)
    assert metrics.spearman(a, -a) == pytest.approx(-1.0)
    assert metrics.kendall_tau(a, np.ones(10)) == 0.0
    assert metrics.rmse(a, a + 2) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same number"):
        metrics.spearman(a, a[:5])
    with pytest.raises(ValueError, match="at least 2"):
        metrics.kendall_tau([1.0], [1.0])


class _SpyRegressor(RegressorMixin, BaseEstimator):
    """Predicts the row id; fails if asked to predict a row it was trained on."""

    def fit(self, X, y):
        self.seen_ = set(X[:, 0].tolist())
        return self

    def predict(self, X):
        assert not self.seen_ & set(X[:, 0].tolist()), "test rows leaked into training"
        return X[:, 0].astype(float)


def test_learning_curve_splits_and_columns():
    X = np.arange(300, dtype=float)[:, None]
    y = np.arange(300, dtype=float)
    frame = metrics.learning_curve(_SpyRegressor(), X, y, sizes=[5, 20, 50], test_size=100,
                                   seeds=3, rng=np.random.default_rng(0),
                                   score_against={"neg": -y})
    assert len(frame) == 9
    assert set(frame.n_train) == {5, 20, 50} and set(frame.seed) == {0, 1, 2}
    assert np.allclose(frame.kendall_tau, 1.0) and np.allclose(frame.spearman_neg, -1.0)
    assert {"rmse", "fit_s", "kendall_tau_neg", "rmse_neg"} <= set(frame.columns)
    with pytest.raises(ValueError, match="cannot hold"):
        metrics.learning_curve(_SpyRegressor(), X, y, [250], 100, 1, np.random.default_rng(0))


def test_learning_curve_is_seeded():
    X, y = _regression(300)
    runs = [metrics.learning_curve(GBMPredictor(n_estimators=20), X, y, [20, 50], 100, 2,
                                   np.random.default_rng(5)) for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0].drop(columns="fit_s"), runs[1].drop(columns="fit_s"))


# ---------------------------------------------------------------- NB201 features

cells = arrays(np.int64, st.tuples(st.integers(1, 30), st.just(6)), elements=st.integers(0, 4))


def test_nb201_connectivity_by_hand():
    genes = np.array([
        [0, 0, 0, 0, 0, 0],  # all none: cut
        [1, 1, 1, 1, 1, 1],  # all skip: open
        [3, 0, 0, 0, 0, 3],  # 0->1 leads nowhere, 2->3 has no input: cut
        [0, 3, 0, 0, 0, 3],  # 0->2->3 only
        [2, 0, 4, 3, 0, 0],  # 0->3 open; 0->1->2 dead end
    ])
    assert F.is_disconnected(genes).tolist() == [True, False, True, False, False]
    np.testing.assert_array_equal(F.effective_genes(genes)[2], np.zeros(6))
    np.testing.assert_array_equal(F.effective_genes(genes)[3], genes[3])
    np.testing.assert_array_equal(F.effective_genes(genes)[4], [0, 0, 0, 3, 0, 0])
    stats = F.cost_statistics(genes)
    assert stats[:, F.STAT_NAMES.index("open_paths")].tolist() == [0, 4, 0, 1, 1]
    assert stats[:, F.STAT_NAMES.index("conv_depth")].tolist() == [0, 0, 0, 2, 1]


def test_nb201_costs_match_the_published_range():
    # NAS-Bench-201 reports 7.78 to 220.11 MFLOPs (MACs) and 0.073 to 1.53 M parameters on CIFAR-10.
    stats = F.cost_statistics(np.array([[0] * 6, [3] * 6]))
    macs, params = stats[:, 0], stats[:, 1]
    np.testing.assert_allclose(macs, [7.78, 220.11], atol=0.01)
    np.testing.assert_allclose(params, [0.073, 1.53], atol=0.002)
    # A dead 3x3 convolution is built (nominal) but cannot matter (effective).
    dead = F.cost_statistics(np.array([[3, 0, 0, 1, 0, 0]]))[0]
    assert dead[0] > dead[2] and dead[1] > dead[3]


@settings(max_examples=50, deadline=None)
@given(genes=cells)
def test_nb201_feature_invariants(genes):
    eff = F.effective_genes(genes)
    np.testing.assert_array_equal(F.effective_genes(eff), eff)  # idempotent
    np.testing.assert_array_equal(F.is_disconnected(eff), F.is_disconnected(genes))
    np.testing.assert_array_equal(F.path_encoding(eff), F.path_encoding(genes))
    disc = F.is_disconnected(genes)
    assert np.all((eff == 0).all(axis=1)[disc])
    stats = F.cost_statistics(genes)
    open_paths = stats[:, F.STAT_NAMES.index("open_paths")]
    np.testing.assert_array_equal(F.path_encoding(genes).sum(axis=1), open_paths)
    np.testing.assert_array_equal(open_paths == 0, disc)
    assert np.all(stats[:, 2] <= stats[:, 0]) and np.all(stats[:, 3] <= stats[:, 1])
    assert np.all(F.op_counts(eff)[:, 1:] <= F.op_counts(genes)[:, 1:])
    for kind in F.FEATURE_SETS:
        X, names = F.encode(genes, kind)
        assert X.shape == (len(genes), len(names)) and len(set(names)) == len(names)


def test_nb201_encode_rejects_bad_input():
    with pytest.raises(ValueError, match="feature set"):
        F.encode(np.zeros((1, 6), dtype=int), "graph")
    with pytest.raises(ValueError, match="shape"):
        F.encode(np.zeros((1, 5), dtype=int))
    with pytest.raises(ValueError, match="op indices"):
        F.encode(np.full((1, 6), 5))


needs_table = pytest.mark.skipif(not nb201.default_path().is_file(),
                                 reason=f"NB201 table absent at {nb201.default_path()}")


@needs_table
def test_nb201_disconnected_cells_are_exactly_the_chance_level_ones():
    table = nb201.load()
    disc = F.is_disconnected(table.genes)
    valid = table.column(nb201.VALID_COLUMN)
    assert disc.sum() == 341
    assert np.all(valid[disc] == valid.min())
    assert valid[~disc].min() > valid.min() + 1


@needs_table
def test_nb201_benchmark_smoke(tmp_path):
    from nas.benchmarks import predictors_nb201

    out = tmp_path / "predictors.md"
    code = predictors_nb201.main(["--seeds", "2", "--slow-seeds", "1", "--sizes", "10,30",
                                  "--test-size", "200", "--only", "ridge-onehot,gbm",
                                  "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert "Reproduce: `python -m nas.benchmarks.predictors_nb201 --seeds 2" in text
    assert "synflow 0.737" in text and "vote of three 0.817" in text
    frame = pd.read_csv(out.with_suffix(".csv"))
    assert len(frame) == 2 * 2 * 2
    assert {"spearman", "kendall_tau", "spearman_test", "kendall_tau_test"} <= set(frame.columns)


def test_learning_curve_gives_seeded_and_unseeded_models_the_same_splits():
    """Splits are drawn before any model seed: an estimator with ``random_state`` (Ridge) and one
    without (the same Ridge in a pipeline) see the same test sets, so they score the same."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    X, y = _regression(300)
    seeded, plain = (metrics.learning_curve(m, X, y, [20, 50], 100, 3, np.random.default_rng(7))
                     for m in (Ridge(), make_pipeline(Ridge())))
    cols = ["seed", "n_train", "kendall_tau", "spearman", "rmse"]
    pd.testing.assert_frame_equal(seeded[cols], plain[cols])
