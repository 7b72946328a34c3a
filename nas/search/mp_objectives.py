"""Objectives of the MILP search: an additive predictor, a DeepMAD-style entropy score, a cost.

Each objective gives its coefficients over the variables of a
:class:`~nas.search.mp_model.Formulation` (``vector``) and its value computed directly from an
architecture (``value``), so every solution can be re-scored without trusting the solver.

DeepMAD-style score (Shen et al., "DeepMAD: Mathematical Architecture Design for Deep
Convolutional Neural Network", CVPR 2023), adapted to be additive over layers::

    score(arch) = sum over units u of E(u)  +  sum over stages s of alpha_s * log(r_s^2 * c_s)

- ``E(u) = sum over the linear operators o of u of 0.5 * log(fan_in(o))``: the log of the growth of
  the output standard deviation of a linear map with unit-variance weights (``sqrt(fan_in)``), the
  per-layer term of DeepMAD's entropy (their ``log(sqrt(c_in * k^2))`` per convolution). Fan-ins:
  stem and transition ``c_in * k^2``; MBConv ``c_in`` (1x1 expand, when expand != 1), ``k^2``
  (depthwise), ``hidden`` (1x1 project); attention ``c`` (qkv), ``T = size^2`` (the attention
  matmul aggregates over all tokens: a kernel covering the whole map), ``heads * head_dim``
  (projection), ``c`` and ``mlp_hidden`` (MLP); mixer ``window^2`` and ``token_hidden`` (token MLP
  inside a window), ``c`` and ``channel_hidden`` (channel MLP); head the 1x1 conv ``c_in`` only
  (DeepMAD scores the features before global pooling). Squeeze-excite gates, norms, activations
  and fixed (unlearned) operators such as average pooling add nothing. A kind registered later
  states its fan-ins in its own ``Unit.entropy``.
- ``log(r_s^2 * c_s)``: DeepMAD's spatial entropy of stage ``s``'s output feature map (size ``r_s``,
  width ``c_s``), weighted per stage as in their multi-scale entropy (default ``alpha = 1`` for every
  stage and ``8`` for the last, their ``multi_block_ratio``).

Difference from DeepMAD: they multiply the spatial term of a stage by the summed layer terms up to
that stage (``log(r^2 c) * sum log sqrt(c k^2)``); a product of two decisions is not linear, so here
the two are added. The score is then exact and linear in the MILP variables (units are unit-group
costs, the spatial terms sit on the resolution and width one-hots). DeepMAD also bounds the
"effectiveness" depth/width ratio; here depth is bounded through the user's FLOPs, params, latency
or memory constraints instead (without any, the deepest and widest network scores highest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from nas.arch import Architecture
from nas.errors import IncompatibleFileError, UserError
from nas.precision import FP32, INT8
from nas.spaces.schema import SearchSpace, stage_input_sizes
from nas.units import Unit, arch_units
from predictors.encoders import OneHotEncoder

from .mp_model import Formulation

DEEPMAD_LAST_STAGE_WEIGHT = 8.0


class Objective(Protocol):
    """What the MILP needs from an objective."""

    name: str
    maximize: bool

    def vector(self, formulation: Formulation) -> tuple[np.ndarray, float]:
        """Coefficients over the formulation's variables and a constant term."""
        ...

    def value(self, space: SearchSpace, arch: Architecture) -> float:
        """The objective of ``arch``, computed directly (no solver)."""
        ...


# ----- DeepMAD-style entropy -------------------------------------------------------------------
def unit_entropy(unit: Unit) -> float:
    """``E(u)``: half the summed log fan-ins of the unit's linear operators (module docstring);
    each kind's rule is ``Unit.entropy`` in its module of :mod:`nas.blocks.kinds`."""
    return unit.entropy()


def deepmad_stage_weights(space: SearchSpace) -> tuple[float, ...]:
    """DeepMAD's default multi-scale weights: 1 per stage, 8 for the last."""
    n = len(space.stages)
    return tuple([1.0] * (n - 1) + [DEEPMAD_LAST_STAGE_WEIGHT])


class DeepMADObjective:
    """Maximise the additive DeepMAD-style entropy score (module docstring)."""

    name = "deepmad"
    maximize = True

    def __init__(self, stage_weights: Sequence[float] | None = None) -> None:
        self.stage_weights = None if stage_weights is None else tuple(map(float, stage_weights))

    def weights(self, space: SearchSpace) -> tuple[float, ...]:
        if self.stage_weights is None:
            return deepmad_stage_weights(space)
        if len(self.stage_weights) != len(space.stages):
            raise UserError(
                f"DeepMAD stage weights: {len(self.stage_weights)} given; space {space.name!r} "
                f"has {len(space.stages)} stages"
            )
        return self.stage_weights

    def value(self, space: SearchSpace, arch: Architecture) -> float:
        return deepmad_score(space, arch, self.weights(space))

    def vector(self, formulation: Formulation) -> tuple[np.ndarray, float]:
        space = formulation.space
        alpha = self.weights(space)
        out = formulation.cost_vector(unit_entropy)
        for r_i, r in enumerate(space.resolutions):
            out_sizes = stage_input_sizes(space, r)[1:]
            spatial = sum(a * math.log(size * size) for a, size in zip(alpha, out_sizes))
            out[formulation.res_cols[r_i]] += spatial
        for s, stage in enumerate(space.stages):
            out[formulation.width_cols[s]] += [alpha[s] * math.log(w) for w in stage.widths]
        return out, 0.0


def deepmad_score(
    space: SearchSpace, arch: Architecture, stage_weights: Sequence[float] | None = None
) -> float:
    """The DeepMAD-style score of ``arch``, computed from its units (module docstring)."""
    alpha = deepmad_stage_weights(space) if stage_weights is None else tuple(stage_weights)
    space.validate(arch)
    layers = sum(unit_entropy(u) for u in arch_units(space, arch))
    out_sizes = stage_input_sizes(space, arch.resolution)[1:]
    spatial = sum(
        a * math.log(size * size * stage.width)
        for a, size, stage in zip(alpha, out_sizes, arch.stages)
    )
    return layers + spatial


# ----- additive predictor on one-hot features ---------------------------------------------------
class LinearObjective:
    """Maximise ``coef @ OneHotEncoder(space).transform([arch])[0] + intercept``.

    ``coef`` has one entry per base column of :class:`predictors.encoders.OneHotEncoder` (in its
    order); extra columns after them (free statistics) must have zero coefficients, since they are
    not additive over layers.
    """

    maximize = True

    def __init__(
        self, coef: Sequence[float] | np.ndarray, intercept: float = 0.0, *, name: str = "predicted"
    ) -> None:
        self.coef = np.asarray(coef, dtype=np.float64).ravel()
        self.intercept = float(intercept)
        self.name = name

    @classmethod
    def from_model(
        cls, space: SearchSpace, model: Any, *, name: str = "predicted"
    ) -> LinearObjective:
        """From a fitted linear estimator (``coef_``, ``intercept_``) on one-hot features.

        If the model carries its encoder (``encoder_`` or ``encoder``) with
        ``get_feature_names_out``, its names must start with this space's one-hot names.
        """
        if not hasattr(model, "coef_"):
            raise UserError(
                f"{type(model).__name__} has no coef_: the MP search needs a fitted linear model on "
                "one-hot features (e.g. ridge), or no predictor (then it maximises the DeepMAD score)"
            )
        coef = np.asarray(model.coef_, dtype=np.float64)
        if coef.ndim == 2 and coef.shape[0] == 1:
            coef = coef[0]
        if coef.ndim != 1:
            raise UserError(f"predictor coef_ has shape {coef.shape}; expected one target")
        intercept = float(np.asarray(getattr(model, "intercept_", 0.0)).ravel()[0])
        encoder = getattr(model, "encoder_", None) or getattr(model, "encoder", None)
        if encoder is not None and hasattr(encoder, "get_feature_names_out"):
            names = list(encoder.get_feature_names_out())
            base = _onehot_names(space)
            if names[: len(base)] != base:
                raise IncompatibleFileError(
                    f"predictor features do not match the one-hot layout of space {space.name!r} "
                    f"(first {len(base)} names differ)"
                )
        return cls(coef, intercept, name=name)

    def _base_coef(self, space: SearchSpace) -> np.ndarray:
        n = len(_onehot_names(space))
        if self.coef.size < n:
            raise IncompatibleFileError(
                f"linear objective has {self.coef.size} coefficients; the one-hot encoding of space "
                f"{space.name!r} has {n} columns"
            )
        extra = self.coef[n:]
        if np.any(extra != 0):
            raise UserError(
                f"linear objective puts weight on {extra.size} columns after the one-hot features "
                "(free statistics?); those are not additive over layers, so the MP search cannot "
                "optimise them exactly. Fit the predictor on one-hot features only"
            )
        return self.coef[:n]

    def value(self, space: SearchSpace, arch: Architecture) -> float:
        x = OneHotEncoder(space).transform([arch])[0]
        return float(x @ self._base_coef(space) + self.intercept)

    def vector(self, formulation: Formulation) -> tuple[np.ndarray, float]:
        space = formulation.space
        coef = self._base_coef(space)
        enc = OneHotEncoder(space)
        out = np.zeros(formulation.n_vars)
        for r_i, r in enumerate(space.resolutions):
            out[formulation.res_cols[r_i]] = coef[enc.columns_of_resolution(r)].sum()
        for s, stage in enumerate(space.stages):
            for k, w in enumerate(stage.widths):
                out[formulation.width_cols[s][k]] = coef[enc.columns_of_width(s, w)].sum()
            for k, d in enumerate(stage.depths):
                out[formulation.depth_cols[s][k]] = coef[enc.columns_of_depth(s, d)].sum()
            for j, cols in enumerate(formulation.choice_cols[s]):
                for c, layer in enumerate(formulation.choices[s]):
                    out[cols[c]] = coef[enc.columns_of_layer(s, j, layer)].sum()
        const = self.intercept
        if formulation.precision is not None:  # int8: p; fp32: active and not p
            from predictors.encoders import precision_gene_names

            for name, gene in zip(precision_gene_names(space), formulation.precision.genes):
                c8 = coef[enc.columns_of_precision(name, INT8)]
                c32 = coef[enc.columns_of_precision(name, FP32)]
                out[gene.p] += c8 - c32
                if gene.active is None:
                    const += c32
                else:
                    out[list(gene.active)] += c32
        return out, const


def _onehot_names(space: SearchSpace) -> list[str]:
    return list(OneHotEncoder(space).get_feature_names_out())


# ----- a named cost -------------------------------------------------------------------------------
class CostObjective:
    """Minimise (or maximise) one named cost: an additive one (``flops``, ``params``, a latency...)
    or ``memory`` (the peak, through an epigraph variable). :class:`nas.search.mp.MILPSearch`
    resolves the name against its costs."""

    def __init__(self, metric: str, *, maximize: bool = False) -> None:
        self.name = metric
        self.metric = metric
        self.maximize = maximize

    def __repr__(self) -> str:
        return f"CostObjective({self.metric!r}, maximize={self.maximize})"
