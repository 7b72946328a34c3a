"""A saved predictor as a function of architectures (or of genome batches), for search.

:func:`load_predictor_for` checks that the predictor was fitted on ``space`` (refusing another
space with a message naming both), rebuilds its encoder from the card, and returns an
:class:`ArchPredictor`: ``predictor(archs) -> np.ndarray``. Its :meth:`ArchPredictor.predict_genomes`
scores a batch of genomes with :class:`predictors.genome_onehot.GenomeOneHot` and
:class:`~nas.spaces.tables.GenomeTables` (vectorised, no Architecture objects) when the encoder is
one-hot, with or without statistics; an ordinal encoder falls back to decoding the genomes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Architecture
from nas.errors import IncompatibleFileError
from nas.precision import FP32
from nas.spaces import SearchSpace, cardinalities, decode

log = logging.getLogger(__name__)


class ArchPredictor:
    """A fitted estimator with the encoder it was trained on; call it on architectures."""

    def __init__(self, space: SearchSpace, estimator: Any, encoder: Any, card: dict[str, Any]):
        self.space = space
        self.estimator = estimator
        self.encoder = encoder
        self.card = card

    @property
    def target(self) -> str:
        return str(self.card.get("target", "val_acc"))

    def __repr__(self) -> str:
        tau = self.card.get("cv", {}).get("kendall_tau", {}).get("mean")
        model = self.card.get("model", {}).get("name", type(self.estimator).__name__)
        return (
            f"ArchPredictor(target={self.target!r}, model={model!r}, "
            f"encoder={self.card.get('encoder', {}).get('kind')!r}, space={self.space.name!r}"
            + (f", cv_kendall_tau={tau:.3f})" if isinstance(tau, int | float) else ")")
        )

    @property
    def is_additive(self) -> bool:
        """Ridge on one-hot features without statistics: a sum of per-choice coefficients."""
        enc = self.card.get("encoder", {})
        return (enc.get("kind") == "onehot" and not enc.get("stats")
                and self.card.get("model", {}).get("name") == "ridge")

    def __call__(self, archs: Architecture | Sequence[Architecture]) -> np.ndarray:
        return self.predict(archs)

    def predict(self, archs: Architecture | Sequence[Architecture], return_std: bool = False):
        """Predicted target per architecture (n,); ``return_std`` only for an ensemble. A
        predictor fitted on an fp32-only space scores the architecture alone (its precision genes
        are set to fp32 first)."""
        if not self.space.searches_precision:
            archs = [archs] if isinstance(archs, Architecture) else list(archs)
            archs = [a.at_precision(FP32) for a in archs]
        return self._predict_features(self.encoder.transform(archs), return_std)

    def _predict_features(self, X: np.ndarray, return_std: bool):
        if return_std:
            return self.estimator.predict(X, return_std=True)
        return np.asarray(self.estimator.predict(X), dtype=np.float64)

    @cached_property
    def _genome_encoder(self) -> Callable[[np.ndarray], np.ndarray] | None:
        kind = self.card.get("encoder", {}).get("kind")
        if kind != "onehot":
            return None
        from nas.spaces.cells import cost_rules
        from nas.spaces.tables import GenomeTables
        from predictors.genome_onehot import GenomeOneHot

        onehot = GenomeOneHot(self.space)
        stats = tuple(self.card.get("encoder", {}).get("stats", ()))
        rules = cost_rules()
        tables = GenomeTables(self.space, rules={s: rules[s] for s in stats}) if stats else None

        def encode(genes: np.ndarray) -> np.ndarray:
            X = onehot.transform(genes)
            if tables is None:
                return X
            c = tables.costs(genes)
            cols = [np.log10(np.maximum(c[s], 1.0)) for s in stats]
            return np.hstack([X, np.stack(cols, axis=1)])

        return encode

    def predict_genomes(self, genes: np.ndarray, return_std: bool = False):
        """Predicted target for a batch of genomes (n, g) (see :mod:`nas.spaces.ops`)."""
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        genes = genes[:, : len(cardinalities(self.space))]  # architecture genes of a precision space
        if self._genome_encoder is not None:
            return self._predict_features(self._genome_encoder(genes), return_std)
        return self.predict([decode(self.space, g) for g in genes], return_std)


def load_predictor_for(space: SearchSpace, directory: str | os.PathLike) -> ArchPredictor:
    """Load the predictor saved in ``directory`` by ``nas fit`` for architectures of ``space``.

    Raises :class:`nas.errors.IncompatibleFileError` if it was fitted on another space, if its
    files were modified, or if its card does not describe an encoder this package builds.
    """
    from nas.sample.fit import FEATURES, make_encoder
    from predictors.persistence import load_predictor, read_card

    directory = Path(directory)
    card = read_card(directory)
    if card.get("space_hash") != space.hash():
        raise IncompatibleFileError(
            f"predictor in {directory} was fitted on space {card.get('space_name')!r} (hash "
            f"{card.get('space_hash')}), not on {space.name!r} (hash {space.hash()}); fit one on "
            "samples of this space with 'nas fit'"
        )
    enc = card.get("encoder")
    if not isinstance(enc, dict) or enc.get("kind") not in FEATURES:
        raise IncompatibleFileError(
            f"{directory}: its card names no encoder this package builds (expected encoder.kind "
            f"in {list(FEATURES)}); was it written by 'nas fit'?"
        )
    encoder = make_encoder(space, enc["kind"], tuple(enc.get("stats", ())))
    names = [str(n) for n in encoder.get_feature_names_out()]
    if card.get("feature_names") != names and space.searches_precision:
        fp32_space = space.with_precisions([FP32])
        fp32_encoder = make_encoder(fp32_space, enc["kind"], tuple(enc.get("stats", ())))
        if card.get("feature_names") == [str(n) for n in fp32_encoder.get_feature_names_out()]:
            log.warning("predictor in %s was fitted on fp32 subnets: it scores the architecture "
                        "and not its precision genes (fit one on 'nas sample --precisions' "
                        "samples for that)", directory)
            space, encoder, names = fp32_space, fp32_encoder, card["feature_names"]
    if card.get("feature_names") != names:
        raise IncompatibleFileError(
            f"{directory}: its feature names differ from those of the {enc['kind']} encoder of "
            f"{space.name!r}; the encoder changed since the predictor was fitted"
        )
    estimator = load_predictor(directory, expected_space_hash=space.hash())
    return ArchPredictor(space, estimator, encoder, card)


def load_genome_predictor_for(
    space: SearchSpace, directory: str | os.PathLike
) -> Callable[[np.ndarray], np.ndarray]:
    """``genes (n, g) -> predictions (n,)``: the batch form search uses (see the module doc)."""
    return load_predictor_for(space, directory).predict_genomes
