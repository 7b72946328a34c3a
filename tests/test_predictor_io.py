"""Saving and loading predictors: round trips, and refusal of tampered or foreign files."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge

from nas.errors import IncompatibleFileError, UserError
from predictors import (
    EnsemblePredictor,
    GBMPredictor,
    MLPPredictor,
    RidgeOneHot,
    load_predictor,
    read_card,
    save_predictor,
)
from predictors.persistence import CARD_FILE

SPACE = "space-hash-aaaa"


def _data(n: int = 80, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.random((n, d))
    return X, X @ np.arange(1.0, d + 1) + np.cos(4 * X[:, 1])


def _card(X: np.ndarray, **extra) -> dict:
    return {"space_hash": SPACE, "feature_names": [f"f{i}" for i in range(X.shape[1])],
            "n_train": len(X), "metrics": {"kendall_tau": 0.5}, **extra}


ESTIMATORS = {
    "ridge": lambda: RidgeOneHot(),
    "gbm": lambda: GBMPredictor(n_estimators=20, random_state=0),
    "gbm-hist": lambda: GBMPredictor(backend="hist", n_estimators=20, random_state=0),
    "mlp": lambda: MLPPredictor(hidden_layer_sizes=(16, 8), max_epochs=10, random_state=0),
    "ensemble": lambda: EnsemblePredictor(
        [GBMPredictor(n_estimators=10), MLPPredictor(hidden_layer_sizes=(8,), max_epochs=5)],
        n_members=2, bootstrap=True, random_state=0),
}


def _saved(tmp_path: Path, name: str = "ridge"):
    X, y = _data()
    model = ESTIMATORS[name]().fit(X, y)
    save_predictor(model, tmp_path / "p", _card(X))
    return model, tmp_path / "p", X


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_round_trip_predicts_identically(tmp_path, name):
    model, directory, X = _saved(tmp_path, name)
    loaded = load_predictor(directory, expected_space_hash=SPACE)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert repr(loaded) == repr(model)  # same parameters, nested estimators included
    card = read_card(directory)
    assert card["space_hash"] == SPACE and card["n_train"] == len(X)
    assert card["estimator_class"] == type(model).__name__ and card["n_features"] == X.shape[1]
    assert card["feature_names"] == [f"f{i}" for i in range(X.shape[1])]
    for fname, digest in card["files"].items():
        assert hashlib.sha256((directory / fname).read_bytes()).hexdigest() == digest
    assert not list(directory.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_round_trip_of_ridge_keeps_coefficients_and_feature_names(tmp_path):
    X, y = _data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = RidgeOneHot().fit(frame, y)
    save_predictor(model, tmp_path / "r", _card(X))
    loaded = load_predictor(tmp_path / "r")
    np.testing.assert_array_equal(loaded.coef_, model.coef_)
    assert loaded.intercept_ == model.intercept_
    assert list(loaded.feature_names_in_) == list(frame.columns)
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_pretrained_mlp_round_trip(tmp_path):
    X, y = _data()
    U = np.random.default_rng(1).random((300, X.shape[1]))
    model = MLPPredictor(max_epochs=5, pretrain_epochs=3, random_state=0)
    model.fit(X, y, X_pretrain=U, y_pretrain=U.sum(axis=1))
    save_predictor(model, tmp_path / "m", _card(X))
    loaded = load_predictor(tmp_path / "m")
    assert loaded.pretrained_
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("name", ["ridge", "gbm", "mlp"])
def test_tampered_payload_is_refused(tmp_path, name):
    _, directory, _ = _saved(tmp_path, name)
    payload = next(directory / f for f in read_card(directory)["files"])
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    with pytest.raises(IncompatibleFileError, match="SHA-256"):
        load_predictor(directory)


def test_missing_payload_or_card_is_refused(tmp_path):
    _, directory, _ = _saved(tmp_path, "mlp")
    next(iter(directory.glob("*.npz"))).unlink()
    with pytest.raises(IncompatibleFileError, match="missing"):
        load_predictor(directory)
    (directory / CARD_FILE).unlink()
    with pytest.raises(IncompatibleFileError, match=r"card\.json: missing"):
        load_predictor(directory)
    with pytest.raises(UserError):  # the CLI prints UserErrors as one line
        load_predictor(tmp_path / "nowhere")


def test_foreign_space_hash_is_refused(tmp_path):
    _, directory, _ = _saved(tmp_path)
    with pytest.raises(IncompatibleFileError, match=r"space-hash-aaaa.*other-space"):
        load_predictor(directory, expected_space_hash="other-space")
    assert load_predictor(directory) is not None  # no expectation: any space


def _rewrite(directory: Path, fname: str, data: bytes, edit=None) -> None:
    """Replace a payload and re-sign it in the card, as an attacker with write access could."""
    (directory / fname).write_bytes(data)
    card = json.loads((directory / CARD_FILE).read_text())
    card["files"][fname] = hashlib.sha256(data).hexdigest()
    if edit:
        edit(card)
    (directory / CARD_FILE).write_text(json.dumps(card))


class _Boom:
    """Unpickling or reconstructing this object would create a marker file."""

    marker: Path | None = None

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resigned_pickle_inside_npz_is_not_executed(tmp_path):
    _, directory, _ = _saved(tmp_path, "ridge")
    marker = tmp_path / "executed"
    boom = _Boom()
    boom.marker = marker
    buf = io.BytesIO()
    np.savez(buf, coef_=np.array([boom], dtype=object))  # needs pickle to read back
    _rewrite(directory, "model.npz", buf.getvalue())
    with pytest.raises(IncompatibleFileError, match="cannot rebuild"):
        load_predictor(directory)
    assert not marker.exists()


class _Untrusted:
    def __init__(self):
        self.value = 1


def test_resigned_skops_payload_with_untrusted_type_is_refused(tmp_path):
    import skops.io as sio

    _, directory, _ = _saved(tmp_path, "gbm")
    fname = next(f for f in read_card(directory)["files"] if f.endswith(".skops"))
    _rewrite(directory, fname, sio.dumps(_Untrusted()))
    with pytest.raises(IncompatibleFileError, match="trusted"):
        load_predictor(directory)


def test_unknown_estimator_class_and_bad_card_are_refused(tmp_path):
    _, directory, _ = _saved(tmp_path)

    def swap_class(card):
        card["estimator"]["class"] = "os.system"

    card_data = (directory / CARD_FILE).read_text()
    _rewrite(directory, "model.npz", (directory / "model.npz").read_bytes(), swap_class)
    with pytest.raises(IncompatibleFileError, match="unknown estimator class"):
        load_predictor(directory)
    (directory / CARD_FILE).write_text(card_data.replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(IncompatibleFileError, match="version 99"):
        load_predictor(directory)
    (directory / CARD_FILE).write_text("{not json")
    with pytest.raises(IncompatibleFileError, match="JSON"):
        load_predictor(directory)


def test_payload_names_cannot_escape_the_directory(tmp_path):
    _, directory, _ = _saved(tmp_path)
    card = json.loads((directory / CARD_FILE).read_text())
    card["files"]["../outside.npz"] = "0" * 64
    (directory / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(IncompatibleFileError, match="outside its folder"):
        load_predictor(directory)


def test_save_validates_its_inputs(tmp_path):
    X, y = _data()
    model = RidgeOneHot().fit(X, y)
    with pytest.raises(ValueError, match="space_hash"):
        save_predictor(model, tmp_path / "a", {"n_train": 3})
    with pytest.raises(ValueError, match="feature names"):
        save_predictor(model, tmp_path / "a", {"space_hash": SPACE, "feature_names": ["x"]})
    with pytest.raises(ValueError, match="reserved"):
        save_predictor(model, tmp_path / "a", {"space_hash": SPACE, "files": {}})
    with pytest.raises(NotFittedError):
        save_predictor(RidgeOneHot(), tmp_path / "a", {"space_hash": SPACE})
    with pytest.raises(TypeError, match="supported estimators"):
        save_predictor(Ridge().fit(X, y), tmp_path / "a", {"space_hash": SPACE})


def test_resaving_a_smaller_model_removes_stale_files(tmp_path):
    X, y = _data()
    big = EnsemblePredictor(GBMPredictor(n_estimators=5), n_members=3, random_state=0).fit(X, y)
    save_predictor(big, tmp_path / "p", _card(X))
    assert len(list((tmp_path / "p").glob("*.skops"))) == 3
    save_predictor(RidgeOneHot().fit(X, y), tmp_path / "p", _card(X))
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [CARD_FILE, "model.npz"]
    assert isinstance(load_predictor(tmp_path / "p"), RidgeOneHot)
