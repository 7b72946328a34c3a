"""Save and load fitted predictors without executing code from the files.

A predictor directory holds ``card.json`` and the learned state:

- ``card.json``: the caller's card (space hash, feature names, training size, metrics, ...) plus the
  estimator's class, parameters and scalar state, and the SHA-256 of every payload file;
- ``*.npz``: numpy arrays (ridge coefficients, MLP weights as a torch ``state_dict`` converted to
  arrays), read with ``allow_pickle=False``;
- ``*.skops``: gradient-boosted trees in skops format, loaded with an explicit list of trusted types
  (skops reconstructs objects from a schema; it never unpickles).

A save is atomic as a set: ``card.json`` is written last (one rename) and the payload files it
lists never have the names of the files the previous card lists (their prefix is ``model``, or
``model-b`` where that would reuse a listed name), so a save killed at any point leaves the
previous predictor loadable; the previous payloads are removed only after the new card is in place.

Only the classes in :data:`REGISTRY` are rebuilt; their constructors only store parameters. Every
payload's hash is checked against the card before it is parsed, so a modified or truncated file is
refused (:class:`nas.errors.IncompatibleFileError`), as is a card for another search space.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from nas.errors import IncompatibleFileError
from nas.io import atomic_write, atomic_write_json
from nas.json_files import read_versioned_json
from predictors._base import LearnedState
from predictors.ensemble import EnsemblePredictor
from predictors.gbm import GBMPredictor
from predictors.mlp import MLPPredictor
from predictors.ridge import RidgeOneHot

FORMAT = "nas-predictor"
FORMAT_VERSION = 1
CARD_FILE = "card.json"
REGISTRY: dict[str, type[BaseEstimator]] = {
    cls.__name__: cls for cls in (RidgeOneHot, GBMPredictor, MLPPredictor, EnsemblePredictor)
}
# Payload name prefixes: a save uses the first whose names the current card does not list.
_PREFIXES = ("model", "model-b")
_PAYLOAD_RE = re.compile(r"(?:model|model-b)(?:\.\d{3})*(?:\.[a-z_]+)?\.(?:npz|skops)")
_RESERVED = ("format", "format_version", "estimator", "estimator_class", "files", "n_features",
             "library_versions")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- parameters <-> JSON

def _param_to_json(value: Any) -> Any:
    if isinstance(value, BaseEstimator):
        return {"__estimator__": _unfitted_spec(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_param_to_json(v) for v in value]}
    if isinstance(value, list):
        return [_param_to_json(v) for v in value]
    if isinstance(value, np.random.Generator):
        return None  # a generator's state is not a parameter worth keeping; refits are unseeded
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save parameter value {value!r} of type {type(value).__name__}")


def _param_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "__estimator__" in value:
            return _build(value["__estimator__"])
        if "__tuple__" in value:
            return tuple(_param_from_json(v) for v in value["__tuple__"])
        raise ValueError(f"unexpected object in parameters: {sorted(value)}")
    if isinstance(value, list):
        return [_param_from_json(v) for v in value]
    return value


def _class_name(estimator: BaseEstimator) -> str:
    name = type(estimator).__name__
    if REGISTRY.get(name) is not type(estimator):
        raise TypeError(f"cannot save a {name}; supported estimators: {sorted(REGISTRY)}")
    return name


def _unfitted_spec(estimator: BaseEstimator) -> dict:
    params = estimator.get_params(deep=False)
    return {"class": _class_name(estimator),
            "params": {k: _param_to_json(v) for k, v in sorted(params.items())}}


def _build(spec: dict) -> BaseEstimator:
    name = spec.get("class")
    if name not in REGISTRY:
        raise ValueError(f"unknown estimator class {name!r}; expected one of {sorted(REGISTRY)}")
    params = {k: _param_from_json(v) for k, v in spec.get("params", {}).items()}
    return REGISTRY[name](**params)


# ---------------------------------------------------------------- fitted state

def _dump(estimator: BaseEstimator, prefix: str, files: dict[str, bytes]) -> dict:
    """Spec of a fitted estimator; payload files are added to ``files``."""
    check_is_fitted(estimator)
    spec = _unfitted_spec(estimator)
    spec["n_features_in_"] = int(estimator.n_features_in_)
    if hasattr(estimator, "feature_names_in_"):
        spec["feature_names_in_"] = [str(n) for n in estimator.feature_names_in_]
    if isinstance(estimator, EnsemblePredictor):
        spec["groups_"] = [int(g) for g in estimator.groups_]
        spec["members"] = [_dump(m, f"{prefix}.{i:03d}", files)
                           for i, m in enumerate(estimator.estimators_)]
        return spec
    state: LearnedState = estimator._get_state()
    spec["state"] = state.meta
    if state.arrays:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in state.arrays.items()})
        spec["arrays"] = f"{prefix}.npz"
        files[spec["arrays"]] = buf.getvalue()
    spec["blobs"] = {}
    for name, data in state.blobs.items():
        spec["blobs"][name] = f"{prefix}.{name}"
        files[f"{prefix}.{name}"] = data
    return spec


def _restore(spec: dict, payload: dict[str, bytes]) -> BaseEstimator:
    estimator = _build(spec)
    estimator.n_features_in_ = int(spec["n_features_in_"])
    if "feature_names_in_" in spec:
        estimator.feature_names_in_ = np.asarray(spec["feature_names_in_"], dtype=object)
    if isinstance(estimator, EnsemblePredictor):
        estimator.estimators_ = [_restore(m, payload) for m in spec["members"]]
        estimator.groups_ = np.asarray(spec["groups_"], dtype=np.int64)
        if len(estimator.groups_) != len(estimator.estimators_):
            raise ValueError("ensemble card lists a different number of groups and members")
        return estimator
    arrays: dict[str, np.ndarray] = {}
    if "arrays" in spec:
        with np.load(io.BytesIO(payload[spec["arrays"]]), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    blobs = {name: payload[fname] for name, fname in spec.get("blobs", {}).items()}
    estimator._set_state(LearnedState(meta=dict(spec.get("state", {})), arrays=arrays, blobs=blobs))
    return estimator


def _library_versions() -> dict[str, str]:
    import sklearn
    import torch

    versions = {"numpy": np.__version__, "scikit-learn": sklearn.__version__,
                "torch": torch.__version__}
    try:
        import skops

        versions["skops"] = skops.__version__
    except ImportError:  # only tree models need it
        pass
    return versions


# ---------------------------------------------------------------- public API

def save_predictor(estimator: BaseEstimator, directory: str | os.PathLike, card: dict) -> Path:
    """Write a fitted predictor and its card to ``directory``; returns the card's path.

    ``card`` must hold ``space_hash`` (str); ``feature_names`` (one per column) and anything else
    JSON-serialisable (training size, metrics, target) are kept as given. Payload files are
    written atomically under names the current card does not use, then the card: a crash at any
    point leaves the previous predictor (or none) loadable, never a card pointing at other files.
    """
    if not isinstance(card, dict) or not isinstance(card.get("space_hash"), str):
        raise ValueError("card must be a dict with a 'space_hash' string")
    clash = sorted(set(card) & set(_RESERVED))
    if clash:
        raise ValueError(f"card keys {clash} are reserved for the saved format")
    directory = Path(directory)
    old_files = _previous_files(directory)
    for prefix in _PREFIXES:  # the first whose file names the current card does not list
        files: dict[str, bytes] = {}
        spec = _dump(estimator, prefix, files)
        if not set(files) & old_files:
            break
    names = card.get("feature_names")
    if names is not None and len(names) != spec["n_features_in_"]:
        raise ValueError(
            f"card lists {len(names)} feature names; the estimator has {spec['n_features_in_']} features"
        )
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        atomic_write(directory / name, lambda f, data=data: f.write(data))
    full = dict(card)
    full.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        estimator_class=spec["class"],
        n_features=spec["n_features_in_"],
        estimator=spec,
        files={name: _sha256(data) for name, data in sorted(files.items())},
        library_versions=_library_versions(),
    )
    path = atomic_write_json(directory / CARD_FILE, full)  # the commit
    _remove_stale_payloads(directory, old_files - set(files), keep=set(files))
    return path


def _remove_stale_payloads(directory: Path, previous: set[str], keep: set[str]) -> None:
    """Remove the previous card's payloads and any left by a save that was killed before its card."""
    leftovers = {p.name for p in directory.iterdir() if _PAYLOAD_RE.fullmatch(p.name)}
    for name in (previous | leftovers) - keep:
        (directory / name).unlink(missing_ok=True)


def _previous_files(directory: Path) -> set[str]:
    try:
        old = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
        return {str(Path(name).name) for name in old.get("files", {})}
    except (OSError, ValueError, AttributeError):
        return set()


def read_card(directory: str | os.PathLike) -> dict:
    """The card of a saved predictor (JSON only; nothing else is read)."""
    return read_versioned_json(Path(directory) / CARD_FILE,
                               "a predictor card (of a directory written by save_predictor)",
                               format=FORMAT, versions=(FORMAT_VERSION,))


def load_predictor(directory: str | os.PathLike, expected_space_hash: str | None = None):
    """Rebuild the predictor saved in ``directory``.

    Raises :class:`nas.errors.IncompatibleFileError` when the card is missing or malformed, the
    card's space hash differs from ``expected_space_hash``, a payload file is missing or its
    SHA-256 differs from the card's, or the state does not fit the estimator.
    """
    directory = Path(directory)
    card = read_card(directory)
    if expected_space_hash is not None and card.get("space_hash") != expected_space_hash:
        raise IncompatibleFileError(
            f"predictor in {directory} was fitted for search space {card.get('space_hash')!r}; "
            f"expected space {expected_space_hash!r} (refit it on samples of this space)"
        )
    payload: dict[str, bytes] = {}
    files = card.get("files")
    if not isinstance(files, dict):
        raise IncompatibleFileError(f"{directory / CARD_FILE} lists no payload files")
    for name, digest in files.items():
        if Path(name).name != name:
            raise IncompatibleFileError(f"{directory / CARD_FILE} names a file outside its folder: {name!r}")
        path = directory / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise IncompatibleFileError(f"{path} is missing; the predictor directory is incomplete") from None
        if _sha256(data) != digest:
            raise IncompatibleFileError(
                f"{path} does not match the SHA-256 recorded in its card: the file was modified "
                "or corrupted after saving; refusing to load it"
            )
        payload[name] = data
    try:
        return _restore(card["estimator"], payload)
    except IncompatibleFileError:
        raise
    except Exception as exc:  # any malformed state: one clear error, never a half-built object
        raise IncompatibleFileError(
            f"cannot rebuild the predictor in {directory}: {type(exc).__name__}: {exc}"
        ) from exc
