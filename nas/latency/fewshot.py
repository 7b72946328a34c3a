"""Few-shot latency tables: a new device from a few whole-network times and other devices' tables.

A device that can only run whole exported networks (a phone, an accelerator behind a vendor
runtime) gives end-to-end times of a handful of subnets. Fitted from scratch, an additive model
needs hundreds of them; the latency tables of OTHER devices of the same space (the priors) already
know which units cost what, up to the ways the new device differs. The transfer model::

    latency(a) ~= b + sum_p sum_k w[p, k] * S[p, k](a) / c_p

- ``S[p, k](a)``: prior ``p``'s calibrated cost of the units of kind ``k`` (stem, conv, trans,
  attn, mixer, head) of architecture ``a`` (:func:`nas.latency.space_units.unit_cost_ms`: the
  sum over kinds is the prior's own whole-network prediction minus its intercept); ``c_p``
  normalises each prior to mean 1 over the shots, so the weights of all priors share one scale.
- ``w >= 0``, ``b >= 0``; the fit minimises squared RELATIVE error plus
  ``alpha * sum_p,k (w[p, k] - u_p)^2``: the per-kind weights of a prior shrink towards one scale
  ``u_p`` of that prior (a device is often "prior p, uniformly faster", less often "prior p with
  attention relatively dearer"). It is :class:`nas.latency.additive.AdditiveLatencyModel` on
  relative-weighted rows, the columns of a prior forming one group.

Candidates (:func:`candidates`): each prior alone and all priors together, each with alpha
:data:`RIGID_ALPHA` (a rescaled prior, or a non-negative mix of whole priors) or one of
:data:`ALPHAS` (per-kind transfer). The candidate with the lowest cross-validated RMS relative
error on the shots wins (leave-one-out up to 20 shots, else 10-fold); within
:data:`TIE_TOLERANCE` of the best, the simplest (rigid before per-kind, fewer priors, stronger
shrinkage). The chosen model is refitted on all shots; it gives each unit a transferred cost
``sum_p w[p, kind] * cost_p(unit) / c_p``.

Stage 2 (:func:`refine_units`): the learned additive model on the shots' unit counts, each unit's
cost shrunk towards ``s * transferred cost + u_kind`` (alpha by cross-validation), so that where
the shots disagree with the transfer single units move; units no shot contains keep their
target. Measured on the 10-device family (``results/benchmarks/latency_fewshot.md``, quiet
machine): stage 2 leaves the mean Spearman where stage 1 puts it (-0.004 at 10 shots, +0.002 at
50) and adds about 2 points of networks within +/-10% at 10-50 shots. The result is written as a latency
table of the space (unit entries, the intercept as a ``lut_sum``-only calibration), so every
command that reads a table (``nas latency predict``, ``nas search --table``, ``nas latency
validate``) uses it unchanged, and its sum over an architecture equals the fitted model. The
cross-validated error stored and printed is 5-fold over both stages. The sidecar's ``notes["fewshot"]`` records the method, the
priors (path, device, CSV SHA-256), the number of shots, every candidate's CV error and the
chosen one; ``notes["calibration_set"]`` lists the shots, which validation never reuses.

:func:`suggest_networks` picks which subnets to measure: from a seeded pool, farthest-point
sampling over the priors' predicted latency (log), the share of each unit kind in it and the
priors' disagreement, so the shots span the latency range, the block kinds and the directions in
which devices differ.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from nas.arch import Architecture
from nas.errors import IncompatibleFileError, SpaceError, UserError
from nas.io import atomic_write_text, read_csv_rows
from nas.latency.additive import AdditiveLatencyModel
from nas.latency.calibration import Calibration
from nas.latency.space_units import (
    UNIT_KINDS,
    check_table,
    space_keys,
    space_units,
    unit_cost_ms,
    unit_kind,
)
from nas.latency.table import LatencyTable, MissingKeysError, TableEntry, TableMeta
from nas.spaces.schema import SearchSpace
from nas.units import arch_keys

RIGID_ALPHA = 1e4  # shrinkage at which the per-kind weights of a prior are one scale
ALPHAS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
TIE_TOLERANCE = 0.02
MIN_SHOTS = 4  # the two-stage CV refits on n - n/5 >= 3 networks
LOO_MAX = 20  # leave-one-out up to this many shots, else 10-fold
FLOOR_MS = 1e-6  # a unit whose transferred cost is <= 0 is stored as this
ARCH_COLUMNS: tuple[str, ...] = ("arch", "architecture")
MS_COLUMNS: tuple[str, ...] = ("latency_ms", "ms")
METHOD = "fewshot-transfer-refine"


# ----- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurements:
    """Whole-network latencies measured on the new device."""

    archs: list[Architecture]
    latency_ms: np.ndarray
    source: str = "<in memory>"


def read_measurements(path: str | os.PathLike, space: SearchSpace) -> Measurements:
    """Read ``arch, latency_ms`` rows (``architecture`` and ``ms`` are accepted too); refuse,
    naming the line, an architecture that does not parse or lies outside ``space``, a repeated
    architecture, a time that is not a finite number > 0, missing columns, or fewer than
    :data:`MIN_SHOTS` rows."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"measurements file not found: {path}")
    rows = read_csv_rows(path)
    header = [c.strip().lower() for c in rows[0]] if rows else []
    arch_col = next((header.index(c) for c in ARCH_COLUMNS if c in header), None)
    ms_col = next((header.index(c) for c in MS_COLUMNS if c in header), None)
    if arch_col is None or ms_col is None:
        raise UserError(
            f"{path}: expected a header with the columns arch and latency_ms (or architecture, "
            f"ms); found {rows[0][:6] if rows else 'an empty file'}"
        )
    archs: list[Architecture] = []
    times: list[float] = []
    first_line: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}, line {line}"
        if len(row) <= max(arch_col, ms_col):
            raise UserError(f"{where}: {len(row)} fields; expected {len(header)}")
        try:
            arch = Architecture.from_str(row[arch_col])
            space.validate(arch)
        except SpaceError as exc:
            raise UserError(
                f"{where}: architecture {row[arch_col].strip()!r} is not in space "
                f"{space.name!r} ({exc})"
            ) from None
        if not row[ms_col].strip():
            raise UserError(f"{where}: no latency for {row[arch_col].strip()!r}; fill in the "
                            "latency_ms column (ms per call) or remove the row")
        try:
            ms = float(row[ms_col])
        except ValueError:
            raise UserError(f"{where}: latency {row[ms_col]!r} is not a number") from None
        if not math.isfinite(ms) or ms <= 0:
            raise UserError(f"{where}: latency {row[ms_col].strip()} ms must be finite and > 0")
        if arch.arch_id() in first_line:
            raise UserError(
                f"{where}: architecture {arch.to_str()!r} was already given on line "
                f"{first_line[arch.arch_id()]}; give each network once (e.g. its median time)"
            )
        first_line[arch.arch_id()] = line
        archs.append(arch)
        times.append(ms)
    if len(archs) < MIN_SHOTS:
        raise UserError(
            f"{path}: {len(archs)} measured networks; a few-shot table needs at least {MIN_SHOTS}"
        )
    return Measurements(archs, np.array(times, dtype=np.float64), str(path))


def load_priors(paths: Sequence[str | os.PathLike], space: SearchSpace) -> list[LatencyTable]:
    """Load the prior tables; each must be of ``space`` (hash), cover its keys and have a
    per-unit additive calibration (any ``nas profile`` table does)."""
    if not paths:
        raise UserError("give at least one --prior latency table of the same space")
    keys = space_keys(space)
    tables = []
    for p in paths:
        table = LatencyTable.load(p)
        try:
            check_table(table, space)
        except IncompatibleFileError as exc:
            raise IncompatibleFileError(f"prior {p}: {exc}") from None
        missing = table.missing(keys)
        if missing:
            raise MissingKeysError(missing, table=f"prior {p}")
        table.meta = replace(table.meta, notes={**table.meta.notes, "_path": str(p)})
        tables.append(table)
    return tables


# ----- features -----------------------------------------------------------------------------------


def prior_unit_costs(priors: Sequence[LatencyTable], space: SearchSpace) -> np.ndarray:
    """``(P, U)`` calibrated cost (ms) of every unit of the space (in :func:`space_keys` order)
    under each prior."""
    units = space_units(space)
    out = np.empty((len(priors), len(units)))
    for p, table in enumerate(priors):
        cost = unit_cost_ms(table)
        out[p] = [cost(u) for u in units.values()]
    return out


def unit_kind_index(space: SearchSpace) -> np.ndarray:
    """Index into :data:`UNIT_KINDS` of every key of the space."""
    return np.array([UNIT_KINDS.index(unit_kind(k)) for k in space_keys(space)])


def arch_unit_counts(space: SearchSpace, archs: Sequence[Architecture]) -> np.ndarray:
    """``(n, U)`` how often each unit key of the space occurs in each architecture."""
    index = {k: i for i, k in enumerate(space_keys(space))}
    counts = np.zeros((len(archs), len(index)))
    for row, arch in enumerate(archs):
        for key in arch_keys(space, arch):
            counts[row, index[key]] += 1
    return counts


def transfer_features(
    unit_costs: np.ndarray, kinds: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """``(n, P, K)``: per architecture, prior and unit kind, the summed unit costs."""
    n_kinds = len(UNIT_KINDS)
    onehot = np.zeros((kinds.size, n_kinds))
    onehot[np.arange(kinds.size), kinds] = 1.0
    # counts (n, U), unit_costs (P, U), onehot (U, K) -> (n, P, K)
    return np.einsum("nu,pu,uk->npk", counts, unit_costs, onehot)


# ----- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One transfer model: which priors, and how strongly per-kind weights shrink to one scale."""

    priors: tuple[int, ...]
    alpha: float

    @property
    def rigid(self) -> bool:
        return self.alpha >= RIGID_ALPHA

    def complexity(self) -> tuple[int, int, float]:
        return (0 if self.rigid else 1, len(self.priors), -self.alpha)

    def label(self, names: Sequence[str]) -> str:
        which = "all priors" if len(self.priors) > 1 else f"prior {names[self.priors[0]]}"
        how = "rescaled" if self.rigid else f"per-kind, alpha {self.alpha:g}"
        return f"{which} ({how})" if len(self.priors) == 1 or not self.rigid else "mix of priors"


def candidates(n_priors: int) -> list[Candidate]:
    """Each prior alone and all together, rigid or per-kind (see the module docstring)."""
    subsets = [(p,) for p in range(n_priors)]
    if n_priors > 1:
        subsets.append(tuple(range(n_priors)))
    return [Candidate(s, a) for s in subsets for a in (RIGID_ALPHA, *ALPHAS)]


@dataclass
class TransferFit:
    """A fitted transfer model: ``latency = scale * (intercept + sum w[p,k] F[p,k] / norm[p])``."""

    candidate: Candidate
    weights: np.ndarray  # (P, K), zero for priors outside the candidate
    intercept: float  # in units of ``scale``
    norm: np.ndarray  # (P,)
    scale: float  # ms
    cv_rms_relative: dict[Candidate, float] = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Latency (ms) from ``(n, P, K)`` features."""
        scaled = features / self.norm[None, :, None]
        return self.scale * (self.intercept + np.einsum("npk,pk->n", scaled, self.weights))

    def unit_costs(self, unit_costs: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        """Transferred cost (ms) of every unit from the priors' ``(P, U)`` costs."""
        w = self.weights[:, kinds]  # (P, U)
        return self.scale * np.sum(w * unit_costs / self.norm[:, None], axis=0)


def _solve(features: np.ndarray, y: np.ndarray, cand: Candidate) -> tuple[np.ndarray, float]:
    """Weights ``(len(cand.priors), K)`` and intercept, on normalised ``features`` and ``y``."""
    sub = features[:, list(cand.priors), :]
    n, p, k = sub.shape
    x = np.hstack([sub.reshape(n, p * k), np.ones((n, 1))]) / y[:, None]
    groups = np.concatenate([np.repeat(np.arange(p), k), [p]])
    model = AdditiveLatencyModel(
        alpha=cand.alpha, groups=groups, nonnegative=True, fit_intercept=False
    ).fit(x, np.ones(n))
    return model.coef_[:-1].reshape(p, k), float(model.coef_[-1])


def _predict(features: np.ndarray, cand: Candidate, w: np.ndarray, b: float) -> np.ndarray:
    return b + np.einsum("npk,pk->n", features[:, list(cand.priors), :], w)


def cv_error(features: np.ndarray, y: np.ndarray, cand: Candidate) -> float:
    """Cross-validated RMS relative error of ``cand`` on normalised features (module docstring)."""
    n = y.size
    folds = KFold(n_splits=n if n <= LOO_MAX else 10).split(y)
    errors = []
    for train, test in folds:
        w, b = _solve(features[train], y[train], cand)
        errors.append((_predict(features[test], cand, w, b) - y[test]) / y[test])
    return float(np.sqrt(np.mean(np.square(np.concatenate(errors)))))


def fit_transfer(
    features: np.ndarray,
    latency_ms: np.ndarray,
    *,
    only: Sequence[Candidate] | None = None,
    cv_errors: dict[Candidate, float] | None = None,
) -> TransferFit:
    """Choose a candidate by cross-validation on the shots and refit it on all of them.

    ``features``: ``(n, P, K)`` (:func:`transfer_features`); ``only``: restrict the candidates
    (the benchmark's fixed variants); ``cv_errors``: the errors of an earlier fit on the same
    shots (its ``cv_rms_relative``), reused instead of recomputed."""
    y_ms = np.asarray(latency_ms, dtype=np.float64)
    if features.ndim != 3 or features.shape[0] != y_ms.size:
        raise ValueError("features must be (n, P, K) with one row per measured network")
    if y_ms.size < 3:  # leave-one-out on fewer cannot fit anything
        raise ValueError("fit_transfer needs at least 3 measured networks")
    norm = features.sum(axis=2).mean(axis=0)
    norm[norm <= 0] = 1.0
    scale = float(np.mean(y_ms))
    x = features / norm[None, :, None]
    y = y_ms / scale
    pool = list(only) if only is not None else candidates(features.shape[1])
    known = cv_errors or {}
    errors = {c: known[c] if c in known else cv_error(x, y, c) for c in pool}
    best = min(errors.values())
    near = [c for c in pool if errors[c] <= best * (1 + TIE_TOLERANCE) + 1e-12]
    chosen = min(near, key=Candidate.complexity)
    w_sub, b = _solve(x, y, chosen)
    weights = np.zeros(features.shape[1:])
    weights[list(chosen.priors)] = w_sub
    return TransferFit(chosen, weights, b, norm, scale, errors)


@dataclass
class Refined:
    """Per-unit costs refined on the shots around the transferred ones."""

    unit_ms: np.ndarray  # (U,) cost of every unit of the space, ms
    intercept_ms: float
    alpha: float


def refine_units(
    counts: np.ndarray, latency_ms: np.ndarray, prior_unit_ms: np.ndarray, kinds: np.ndarray
) -> Refined:
    """Stage 2: :class:`AdditiveLatencyModel` on the unit counts of the shots, each unit's cost
    shrunk towards ``s * transferred cost + u_kind`` (alpha by cross-validation), so the shots
    correct single units where they disagree with the transfer. Units no shot contains get
    exactly their shrinkage target."""
    prior = np.maximum(prior_unit_ms, FLOOR_MS)
    used = counts.sum(axis=0) > 0
    model = AdditiveLatencyModel(prior=prior[used], groups=kinds[used])
    model.fit(counts[:, used], np.asarray(latency_ms, dtype=np.float64))
    unit = np.empty(prior.size)
    unit[used] = model.coef_
    base = dict(zip(np.unique(kinds[used]).tolist(), model.group_costs_.tolist()))
    unit[~used] = model.prior_scale_ * prior[~used] + np.array(
        [base.get(int(k), 0.0) for k in kinds[~used]]
    )
    return Refined(unit, float(model.intercept_), float(model.alpha_))


def fit_pipeline(
    features: np.ndarray,
    counts: np.ndarray,
    latency_ms: np.ndarray,
    prior_costs: np.ndarray,
    kinds: np.ndarray,
) -> tuple[TransferFit, Refined]:
    """Transfer (stage 1, :func:`fit_transfer`) then per-unit refinement (stage 2)."""
    fit = fit_transfer(features, latency_ms)
    return fit, refine_units(counts, latency_ms, fit.unit_costs(prior_costs, kinds), kinds)


def pipeline_cv_error(
    features: np.ndarray,
    counts: np.ndarray,
    latency_ms: np.ndarray,
    prior_costs: np.ndarray,
    kinds: np.ndarray,
    folds: int = 5,
) -> float:
    """K-fold RMS relative error of the whole two-stage fit (both stages refitted per fold)."""
    y = np.asarray(latency_ms, dtype=np.float64)
    errors = []
    for train, test in KFold(n_splits=min(folds, y.size)).split(y):
        _, refined = fit_pipeline(features[train], counts[train], y[train], prior_costs, kinds)
        pred = counts[test] @ refined.unit_ms + refined.intercept_ms
        errors.append((pred - y[test]) / y[test])
    return float(np.sqrt(np.mean(np.square(np.concatenate(errors)))))


# ----- the table -----------------------------------------------------------------------------------


@dataclass
class FewshotResult:
    """A few-shot table and how it was made."""

    table: LatencyTable
    fit: TransferFit
    cv_rms_relative: float
    in_sample: dict[str, float]
    n_clipped: int


def fit_fewshot_table(
    space: SearchSpace,
    measurements: Measurements,
    priors: Sequence[LatencyTable],
    *,
    device: str = "cpu",
    runtime: str = "torch",
    threads: int = 1,
    batch: int = 1,
    processor: str = "unknown (few-shot from whole-network times)",
) -> FewshotResult:
    """Fit the transfer model on ``measurements`` and build the few-shot latency table.

    ``device``/``runtime``/``threads``/``batch`` describe the measured device for the sidecar
    (and for ``nas latency validate``, which re-times networks with them when they exist here).
    """
    if len(measurements.archs) < MIN_SHOTS:
        raise UserError(f"a few-shot fit needs at least {MIN_SHOTS} measured networks, got "
                        f"{len(measurements.archs)}")
    for table in priors:
        check_table(table, space)
    costs = prior_unit_costs(priors, space)
    kinds = unit_kind_index(space)
    counts = arch_unit_counts(space, measurements.archs)
    features = transfer_features(costs, kinds, counts)
    y = measurements.latency_ms
    fit, refined = fit_pipeline(features, counts, y, costs, kinds)
    n_clipped = int(np.sum(refined.unit_ms <= 0))
    per_unit = np.maximum(refined.unit_ms, FLOOR_MS)
    predicted = counts @ per_unit + refined.intercept_ms
    rel = (predicted - y) / y
    cv = pipeline_cv_error(features, counts, y, costs, kinds)
    names = [_prior_name(t, i) for i, t in enumerate(priors)]
    meta = TableMeta(
        device=device,
        processor=processor,
        runtime=runtime,
        versions={},
        threads=int(threads),
        batch=int(batch),
        dtype="float32",
        space_name=space.name,
        space_hash=space.hash(),
        protocol=_protocol(device, runtime, threads),
        created=_now(),
    )
    table = LatencyTable(
        meta,
        {k: TableEntry(float(v), 0.0, float(v), 1) for k, v in zip(space_keys(space), per_unit)},
    )
    table.set_calibration(
        Calibration(
            features=("lut_sum",),
            coef=(1.0,),
            intercept=refined.intercept_ms,
            n_fit=int(measurements.latency_ms.size),
            relative=True,
            fit_median_ape=float(np.median(np.abs(rel))),
        )
    )
    record: dict[str, Any] = {
        "method": METHOD,
        "stages": "1: per-kind transfer of the priors' unit costs (candidate chosen by CV); "
                  "2: per-unit refinement shrunk towards stage 1 (alpha by CV)",
        "chosen": fit.candidate.label(names),
        "refine_alpha": refined.alpha,
        "chosen_priors": [names[p] for p in fit.candidate.priors],
        "chosen_alpha": fit.candidate.alpha,
        "n_measurements": int(measurements.latency_ms.size),
        "measurements": measurements.source,
        "cv": f"{min(5, y.size)}-fold, both stages refitted per fold",
        "cv_rms_relative_error": cv,
        "stage1_cv": "leave-one-out" if y.size <= LOO_MAX else "10-fold",
        "stage1_cv_candidates": {c.label(names): e for c, e in fit.cv_rms_relative.items()},
        "kind_weights": {
            names[p]: dict(zip(UNIT_KINDS, (float(v) for v in fit.weights[p])))
            for p in fit.candidate.priors
        },
        "units_clipped": n_clipped,
        "priors": [
            {
                "name": names[i],
                "path": t.meta.notes.get("_path", ""),
                "device": t.meta.device,
                "runtime": t.meta.runtime,
                "threads": t.meta.threads,
                "batch": t.meta.batch,
                "csv_sha256": _csv_sha(t),
            }
            for i, t in enumerate(priors)
        ],
    }
    table.meta = replace(
        table.meta,
        notes={
            "fewshot": record,
            "calibration_set": {
                "seed": None,
                "archs": [a.to_str() for a in measurements.archs],
                "arch_ids": [a.arch_id() for a in measurements.archs],
                "measured_ms": [float(v) for v in measurements.latency_ms],
                "chosen": "fewshot",
            },
        },
    )
    in_sample = {
        "median_ape_pct": float(np.median(np.abs(rel)) * 100),
        "within10_pct": float(np.mean(np.abs(rel) <= 0.10) * 100),
    }
    return FewshotResult(table, fit, cv, in_sample, n_clipped)


def _protocol(device: str, runtime: str, threads: int) -> dict[str, Any]:
    from nas.latency.protocol import TimingProtocol

    try:
        return TimingProtocol(device=device, runtime=runtime, threads=int(threads)).describe()
    except UserError:
        return {"device": device, "runtime": runtime, "threads": int(threads)}


def _prior_name(table: LatencyTable, index: int) -> str:
    path = table.meta.notes.get("_path")
    return Path(path).stem if path else f"{table.meta.device}/{table.meta.runtime}#{index}"


def _csv_sha(table: LatencyTable) -> str | None:
    path = table.meta.notes.get("_path")
    if not path:
        return None
    from nas.json_files import read_json_object

    sidecar = read_json_object(LatencyTable.paths(path)[1], "a latency table sidecar")
    return sidecar.get("csv_sha256")


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----- which networks to measure -------------------------------------------------------------------


def suggestion_features(features: np.ndarray) -> np.ndarray:
    """Per architecture: log mean prior latency (weight 2), the share of each unit kind in it
    (mean over priors) and each prior's log ratio to the mean prior, all standardised."""
    total = features.sum(axis=2)  # (n, P)
    norm = total.mean(axis=0)
    norm[norm <= 0] = 1.0
    rel = total / norm
    mean = rel.mean(axis=1)
    shares = (features / np.maximum(total, 1e-12)[:, :, None]).mean(axis=1)  # (n, K)
    cols = [np.log(mean)[:, None], shares]
    if features.shape[1] > 1:
        cols.append(np.log(np.maximum(rel, 1e-12) / mean[:, None]))
    z = np.hstack(cols)
    std = z.std(axis=0)
    z = (z - z.mean(axis=0)) / np.where(std > 0, std, 1.0)
    z[:, 0] *= 2.0
    return z


def farthest_points(z: np.ndarray, n: int) -> list[int]:
    """Greedy farthest-point order: the point nearest the centre first, then each next point
    farthest from those chosen (deterministic; ties to the lower index)."""
    first = int(np.argmin(np.sum(z**2, axis=1)))
    chosen = [first]
    dist = np.sum((z - z[first]) ** 2, axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.sum((z - z[nxt]) ** 2, axis=1))
    return chosen


def suggest_networks(
    space: SearchSpace,
    priors: Sequence[LatencyTable],
    n: int,
    rng: np.random.Generator,
    *,
    pool: int = 2000,
    exclude: Sequence[Architecture] = (),
) -> list[tuple[Architecture, float]]:
    """``n`` subnets to measure on a new device, each with the priors' mean predicted latency
    (ms, for a sanity check of the measured times); see the module docstring."""
    from nas.latency.space_profile import distinct_archs

    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    size = space.size()
    pool = int(min(max(pool, n), size - len(exclude))) if math.isfinite(size) else max(pool, n)
    archs = distinct_archs(space, pool, rng, exclude=exclude)
    costs = prior_unit_costs(priors, space)
    features = transfer_features(costs, unit_kind_index(space), arch_unit_counts(space, archs))
    order = farthest_points(suggestion_features(features), n)
    predicted = features.sum(axis=2).mean(axis=1)
    return [(archs[i], float(predicted[i])) for i in order]


def write_suggestions(path: str | os.PathLike, picks: Sequence[tuple[Architecture, float]]) -> Path:
    """``arch, arch_id, prior_mean_ms, latency_ms`` (the last column empty, to fill in)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["arch", "arch_id", "prior_mean_ms", "latency_ms"])
    for arch, ms in picks:
        writer.writerow([arch.to_str(), arch.arch_id(), f"{ms:.6g}", ""])
    return atomic_write_text(path, buf.getvalue())
