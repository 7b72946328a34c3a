"""``nas fit``, ``load_predictor_for`` and ``nas predictors evaluate`` on a synthetic samples file.

The samples are real hybrid-tiny architectures with exact costs; the target is an additive function
of their one-hot features plus noise (seeded), so a good predictor is known to exist and a broken
one is caught. No supernet is needed here (measuring is tested in test_sampling.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nas import costs
from nas.cli import main
from nas.errors import IncompatibleFileError, UserError
from nas.sample import draw_architectures
from nas.sample.fit import fit_predictor, load_training_data
from nas.sample.predictor import load_genome_predictor_for, load_predictor_for
from nas.sample.store import SampleWriter, new_sidecar, sidecar_path, write_sidecar
from nas.spaces import encode, load_space
from predictors.encoders import OneHotEncoder

SPACE = "hybrid-tiny"
N = 90


def write_synthetic_samples(path: Path, n: int = N, seed: int = 0) -> Path:
    space = load_space(SPACE)
    archs = draw_architectures(space, n, seed=seed)
    rng = np.random.default_rng(seed)
    X = OneHotEncoder(space).transform(archs)
    weights = rng.normal(0, 1, X.shape[1])
    score = X @ weights
    y = 0.6 + 0.1 * (score - score.mean()) / score.std() + rng.normal(0, 0.01, n)
    write_sidecar(path, new_sidecar(space, run={"checkpoint_sha256": "synthetic"},
                                    evaluation={"split": "val"}, latency_table=None, draws=[]))
    with SampleWriter(path) as w:
        for arch, acc in zip(archs, y):
            c = costs.costs(space, arch).as_dict()
            w.write({"arch_id": arch.arch_id(), "arch": arch.to_str(), "arch_json": arch.to_json(),
                     "macs": c["macs"], "flops": c["flops"], "params": c["params"],
                     "memory": c["memory"], "latency_ms": None, "val_acc": float(acc),
                     "val_loss": float(2.0 - acc), "seconds": 0.1})
    return path


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    return write_synthetic_samples(tmp_path_factory.mktemp("fit") / "samples.csv")


@pytest.fixture(scope="module")
def new_archs():
    space = load_space(SPACE)
    return draw_architectures(space, 25, seed=12345)


@pytest.mark.parametrize(
    "model, features, stats",
    [("ridge", "onehot", ()), ("gbm", "ordinal", ()), ("mlp", "onehot", ("macs", "memory")),
     ("ensemble", "onehot", ("params",))],
)
def test_saved_predictor_reloads_and_predicts_identically(samples, new_archs, tmp_path, model,
                                                           features, stats):
    space = load_space(SPACE)
    fitted = fit_predictor(samples, model=model, features=features, stats=stats, seed=1,
                           folds=2, out=tmp_path / "p")
    expected = fitted.estimator.predict(fitted.encoder.transform(new_archs))
    loaded = load_predictor_for(space, tmp_path / "p")
    assert np.array_equal(loaded(new_archs), expected)
    genes = np.stack([encode(space, a) for a in new_archs])
    np.testing.assert_allclose(load_genome_predictor_for(space, tmp_path / "p")(genes), expected,
                               rtol=0, atol=1e-9)
    card = json.loads((tmp_path / "p" / "card.json").read_text())
    assert card["space_name"] == SPACE and card["space_hash"] == space.hash()
    assert card["encoder"] == {"kind": features, "stats": list(stats)}
    assert len(card["feature_names"]) == card["n_features"] == fitted.encoder.n_features
    assert card["n_train"] == N and card["target"] == "val_acc"
    assert set(card["cv"]) >= {"kendall_tau", "spearman", "rmse", "folds"}
    assert card["model"]["name"] == model and card["model"]["params"]
    assert loaded.is_additive == (model == "ridge" and features == "onehot" and not stats)
    if model == "ensemble":
        mean, std = loaded.predict(new_archs, return_std=True)
        assert np.array_equal(mean, expected) and (std > 0).all()


def test_cross_validated_quality_on_an_additive_target(samples):
    ridge = fit_predictor(samples, model="ridge", seed=0)
    assert ridge.card["cv"]["kendall_tau"]["mean"] > 0.6
    assert ridge.path is None and len(load_training_data(samples).archs) == N


def test_fit_cli_prints_cv_metrics_and_show_prints_the_card(samples, tmp_path, capsys):
    out = tmp_path / "ridge"
    assert main(["fit", "--samples", str(samples), "--model", "ridge", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5-fold CV: Kendall tau" in text and "Spearman" in text and "RMSE" in text
    assert main(["predictors", "show", str(out)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["space_name"] == SPACE and "cv" in shown


def test_predictor_for_another_space_or_tampered_is_refused(samples, tmp_path):
    out = tmp_path / "p"
    fit_predictor(samples, model="ridge", out=out)
    with pytest.raises(IncompatibleFileError, match="fitted on space 'hybrid-tiny'"):
        load_predictor_for(load_space("hybrid-cifar"), out)
    card_path = out / "card.json"
    card = json.loads(card_path.read_text())
    card["encoder"]["kind"] = "graph"
    card_path.write_text(json.dumps(card))
    with pytest.raises(IncompatibleFileError, match="encoder"):
        load_predictor_for(load_space(SPACE), out)
    fit_predictor(samples, model="ridge", out=out)
    payload = next(p for p in out.iterdir() if p.suffix == ".npz")
    payload.write_bytes(payload.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(IncompatibleFileError, match="SHA-256"):
        load_predictor_for(load_space(SPACE), out)


def test_fit_killed_before_the_card_keeps_the_old_predictor(samples, new_archs, tmp_path,
                                                            monkeypatch):
    """A kill during ``nas fit`` into an existing folder, after the model files and before
    ``card.json``: the previous predictor still loads and predicts as before."""
    import predictors.persistence as persistence

    space = load_space(SPACE)
    out = tmp_path / "p"
    assert main(["fit", "--samples", str(samples), "--model", "ridge", "--out", str(out)]) == 0
    before = load_predictor_for(space, out).predict(new_archs)

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt  # Ctrl-C there; a SIGKILL stops at the same point

    monkeypatch.setattr(persistence, "atomic_write_json", killed)
    refit = ["fit", "--samples", str(samples), "--model", "ridge", "--stats", "macs", "--out",
             str(out)]  # the same file names as the first fit, other content
    assert main(refit) == 130
    monkeypatch.undo()
    np.testing.assert_array_equal(load_predictor_for(space, out).predict(new_archs), before)
    assert main(refit) == 0
    assert json.loads((out / "card.json").read_text())["encoder"]["stats"] == ["macs"]


def test_fit_refuses_unlabelled_samples_and_empty_targets(samples, tmp_path):
    bare = tmp_path / "bare.csv"
    bare.write_bytes(samples.read_bytes())
    with pytest.raises(IncompatibleFileError, match="sidecar"):
        fit_predictor(bare)
    sidecar_path(bare).write_bytes(sidecar_path(samples).read_bytes())
    with pytest.raises(UserError, match="no row has a value for 'latency_ms'"):
        fit_predictor(bare, target="latency_ms")
    with pytest.raises(UserError, match="expected any of"):
        fit_predictor(bare, stats=("flops_per_watt",))
    assert main(["fit", "--samples", str(tmp_path / "none.csv"), "--out", str(tmp_path / "x")]) == 2


def test_predictors_evaluate_prints_a_learning_curve(samples, tmp_path, capsys):
    out = tmp_path / "curve.csv"
    argv = ["predictors", "evaluate", "--samples", str(samples), "--model", "ridge,gbm",
            "--sizes", "10,20,50,500", "--test", "30", "--seeds", "2", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "skipped sizes [500]" in text
    for model in ("ridge", "gbm"):
        for n in (10, 20, 50):
            assert f"| {model} | {n} |" in text
    import pandas as pd

    curve = pd.read_csv(out)
    assert len(curve) == 2 * 2 * 3 and set(curve["model"]) == {"ridge", "gbm"}
    assert curve["kendall_tau"].between(-1, 1).all()
    ridge = curve[curve.model == "ridge"].groupby("n_train")["kendall_tau"].mean()
    assert ridge[50] > ridge[10]  # more samples, better ranking on an additive target
    assert out.with_suffix(".md").read_text().count("| ridge |") == 3


@pytest.mark.parametrize("model, features", [("ridge", "onehot"), ("ridge", "ordinal")])
def test_fp32_predictor_on_a_precision_space_scores_the_architecture(samples, new_archs,
                                                                     tmp_path, model, features):
    """A predictor fitted on fp32 samples loads for the same space with precision genes and
    scores architectures and genomes by their architecture genes (with a warning)."""
    space = load_space(SPACE)
    fit_predictor(samples, model=model, features=features, seed=1, folds=2, out=tmp_path / "p")
    mixed = space.with_precisions("fp32,int8")
    plain = load_predictor_for(space, tmp_path / "p")
    blind = load_predictor_for(mixed, tmp_path / "p")
    rng = np.random.default_rng(7)
    policies = [mixed.sample(rng) for _ in range(10)]
    want = plain.predict([a.at_precision("fp32") for a in policies])
    np.testing.assert_allclose(blind.predict(policies), want)
    genes = np.stack([encode(mixed, a) for a in policies])
    np.testing.assert_allclose(blind.predict_genomes(genes), want)
