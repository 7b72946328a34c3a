"""Our search spaces as a :class:`~nas.search.problem.MetricProblem` over genomes.

A genome is the int vector of :mod:`nas.spaces.ops` (``[resolution, (width, depth, slots...) per
stage]``); :meth:`SpaceProblem.canonical` zeroes the slots beyond each stage's depth, so two genomes
of the same network are one genome to the searchers.

Metrics, all computed for a whole batch of genomes at once:

- ``macs``, ``flops`` (= 2 macs), ``params``, ``memory`` (peak activation bytes at batch 1; alias
  ``peak_memory``) and ``param_memory`` (float32 weight bytes): exact, from
  :class:`~nas.spaces.tables.GenomeTables` (the same numbers as :func:`nas.costs.costs`);
- ``latency_ms`` (alias ``latency``), with a latency table: the table's prediction (sum of unit
  medians, then its calibration). A calibration additive over units (``lut_sum``, ``n_units``,
  ``n_<kind>``, ``params``) becomes one more ``GenomeTables`` rule (vectorised, exact); any other is
  evaluated architecture by architecture with :func:`nas.latency.space_units.predict_latency`;
- ``val_acc`` (a fraction, as ``nas sample`` measures it) and ``accuracy`` (the same in percent):
  from a predictor (:meth:`ArchPredictor.predict_genomes`), or MEASURED with the supernet on the
  validation split (:class:`MeasuredAccuracy`), each architecture once (cached).

:meth:`SpaceProblem.achievable_range` is exact for the cost metrics (dynamic programming over
stages, :func:`nas.spaces.extremes.cost_extreme`) and for an additive (ridge one-hot) predictor's
accuracy (a MILP); :meth:`SpaceProblem.jointly_feasible` asks the MILP of :mod:`nas.search.mp`
whether one architecture meets every constraint at once. :meth:`SpaceProblem.exact_metrics`
recomputes the metrics of one architecture with the per-architecture functions
(:func:`nas.costs.costs`, :func:`~nas.latency.space_units.predict_latency`,
``ArchPredictor.predict``), which is what every emitted architecture is re-checked with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property, partial
from typing import Any

import numpy as np

from nas.arch import Architecture
from nas.costs import BYTES_PER_ELEMENT, costs
from nas.errors import IncompatibleFileError, UserError
from nas.metrics import canonical as canonical_metric
from nas.metrics import cost_base
from nas.search.constraints import Constraint, Objective
from nas.search.problem import MetricProblem
from nas.spaces import SearchSpace, canonical, cardinalities, decode

COST_METRICS: tuple[str, ...] = ("macs", "flops", "params", "memory", "peak_memory", "param_memory",
                                 "size_bytes")
LATENCY_METRICS: tuple[str, ...] = ("latency_ms", "latency")
ACCURACY_METRICS: tuple[str, ...] = ("accuracy", "val_acc")
DEEPMAD = "deepmad_score"
PERCENT = 100.0  # accuracy (percent) = PERCENT * val_acc (fraction)
# metric -> (base metric of the DP/MILP, scale): flops = 2 macs, param_memory = 4 params
_COST_BASE: dict[str, tuple[str, float]] = {
    name: base for name in COST_METRICS if (base := cost_base(name)) is not None
}


# ----- accuracy measured with the supernet ----------------------------------------------------
def _measure_one(arch: Architecture, *, evaluator: Any) -> dict[str, float]:
    """Task body for map_local / map_tasks (a top-level function, so it pickles)."""
    return evaluator(arch)


class MeasuredAccuracy:
    """Validation accuracy (fraction) of subnets of a trained supernet, each measured once.

    ``evaluator`` is a :class:`nas.sample.measure.SubnetEvaluator` (BN recalibrated with a seed
    derived from the ``arch_id``, validation split; the test split is never touched), so a value
    depends on the architecture only. Batches fan out over ``workers`` local processes, or Ray
    tasks with ``ray_address`` (``"local"``, ``"auto"``, ``"host:port"``).
    """

    def __init__(
        self,
        evaluator: Any,
        *,
        workers: int = 1,
        ray_address: str | None = None,
        progress: bool = False,
    ) -> None:
        if workers < 1:
            raise UserError(f"workers={workers}: expected at least 1")
        self.evaluator = evaluator
        self.workers = workers
        self.ray_address = ray_address
        self.progress = progress
        self._cache: dict[str, float] = {}
        self.measured = 0  # measurements made by this object (cache hits excluded)
        self.seconds = 0.0

    @classmethod
    def from_run(
        cls,
        run_dir: Any,
        *,
        settings: Any = None,
        device: str = "cpu",
        workers: int = 1,
        ray_address: str | None = None,
        progress: bool = False,
        run: Any = None,
    ) -> MeasuredAccuracy:
        """From a ``nas train`` run folder (``run``: an already loaded ``TrainedRun``)."""
        from nas.sample.measure import EvalSettings, SubnetEvaluator
        from nas.train.rundir import load_supernet

        run = run if run is not None else load_supernet(run_dir, device=device, load_data=True)
        evaluator = SubnetEvaluator(run.space, run.supernet.state_dict(), run.splits,
                                    settings or EvalSettings(), device=device,
                                    supernet=run.supernet)
        return cls(evaluator, workers=workers, ray_address=ray_address, progress=progress)

    def known(self) -> dict[str, float]:
        """arch_id -> measured val_acc, for every architecture measured or remembered."""
        return dict(self._cache)

    def remember(self, arch_ids: Sequence[str], values: Sequence[float]) -> None:
        """Seed the cache (a resumed search does not measure its history again)."""
        for a, v in zip(arch_ids, values):
            if np.isfinite(v):
                self._cache[str(a)] = float(v)

    def __call__(self, archs: Sequence[Architecture]) -> np.ndarray:
        """val_acc (fraction) of each architecture, (n,)."""
        import time

        ids = [a.arch_id() for a in archs]
        todo: dict[str, Architecture] = {}
        for i, a in zip(ids, archs):
            if i not in self._cache:
                todo.setdefault(i, a)
        if todo:
            start = time.perf_counter()
            results = self._map(list(todo.values()))
            self.seconds += time.perf_counter() - start
            for i, r in zip(todo, results):
                self._cache[i] = float(r["val_acc"])
            self.measured += len(todo)
        return np.array([self._cache[i] for i in ids], dtype=np.float64)

    def _map(self, archs: list[Architecture]) -> list[dict[str, float]]:
        from nas.distributed import map_local, map_tasks

        shared = {"evaluator": self.evaluator}
        desc = "measuring subnets"
        if self.ray_address is None:
            return map_local(_measure_one, archs, processes=self.workers, shared=shared,
                             progress=self.progress, desc=desc)
        address = None if self.ray_address == "local" else self.ray_address
        threads = float(getattr(getattr(self.evaluator, "settings", None), "threads", 1))
        return map_tasks(_measure_one, archs, address=address,
                         num_cpus=int(self.workers * threads), shared=shared,
                         progress=self.progress, desc=desc, task_num_cpus=threads)


# ----- latency from a table ---------------------------------------------------------------------
class TableLatency:
    """A latency table's predictions over genomes of ``space``.

    ``additive`` is True when the calibration is a sum over units; then :attr:`rule` is the
    per-unit :class:`~nas.spaces.tables.CostRule` (intercept carried by the stem) and
    :meth:`additive_cost` the MILP's (the same type, with the intercept as its offset). Otherwise
    :meth:`predict` decodes and calls :func:`~nas.latency.space_units.predict_latency`.
    A table of another space, or one that lacks keys the space can use, is refused.
    """

    def __init__(self, table: Any, space: SearchSpace) -> None:
        from nas.latency.space_units import check_table, latency_cost_rule, precision_keys
        from nas.latency.table import MissingKeysError

        check_table(table, space)
        missing = table.missing(precision_keys(space, space.precisions))
        if missing:
            raise MissingKeysError(missing, table=f"latency table ({table.meta.space_name})")
        self.table = table
        self.space = space
        self.rule = None
        self.reason = ""
        try:
            self.rule = latency_cost_rule(table, space)
        except IncompatibleFileError as exc:  # a calibration that is not a sum over units
            self.reason = str(exc)
        if self.rule is not None and space.searches_precision:
            self.reason = ("with precision genes, the quantize/dequantize between neighbouring "
                           "units of different precision is not a sum over single units")

    @property
    def additive(self) -> bool:
        """Vectorised over genomes (per-unit tables); mixed precision decodes instead (exact)."""
        return self.rule is not None and not self.space.searches_precision

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Per-architecture prediction (the reference every other route is checked against)."""
        from nas.latency.space_units import predict_latency

        return np.asarray(predict_latency(self.table, self.space, list(archs)), dtype=np.float64)

    def additive_cost(self) -> Any:
        """The prediction as a MILP cost (:attr:`rule`, the one builder's); refuses a calibration
        that is not additive over units."""
        if self.rule is None:
            raise UserError(
                f"the MP search needs a latency that is a sum over units; this table's calibration "
                f"is not ({self.reason}); use --algo evolution, optuna or random with this table"
            )
        return self.rule

    def describe(self) -> dict[str, Any]:
        m = self.table.meta
        cal = self.table.calibration
        return {"device": m.device, "runtime": m.runtime, "processor": m.processor,
                "space_hash": m.space_hash, "entries": len(self.table),
                "calibration": None if cal is None else cal.to_dict()["formula"],
                "vectorised": self.additive}


# ----- the problem ------------------------------------------------------------------------------
class SpaceProblem(MetricProblem):
    """Search over ``space`` with named objectives and constraints (see the module docstring).

    ``predictor``: an :class:`~nas.sample.predictor.ArchPredictor` (target ``val_acc``: gives
    ``val_acc`` and ``accuracy``; target ``latency_ms``: gives ``latency_ms`` when there is no
    table). ``table``: a :class:`~nas.latency.table.LatencyTable`. ``measured``: a
    :class:`MeasuredAccuracy`, used for accuracy when there is no predictor. ``extra_metrics``:
    more metrics to report (``deepmad_score``).
    """

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective | str],
        constraints: Sequence[Constraint | str] = (),
        *,
        predictor: Any = None,
        table: Any = None,
        measured: MeasuredAccuracy | None = None,
        extra_metrics: Sequence[str] = (),
    ) -> None:
        self.space = space
        self.predictor = predictor
        self.measured = measured
        self.latency = TableLatency(table, space) if table is not None else None
        if predictor is not None and getattr(predictor, "space", space).hash() != space.hash():
            raise IncompatibleFileError(
                f"the predictor was fitted on space {predictor.space.name!r}, not {space.name!r}"
            )
        target = getattr(predictor, "target", "val_acc") if predictor is not None else None
        if target not in (None, "val_acc", "latency_ms"):
            raise UserError(f"a predictor of {target!r} cannot drive the search; fit one of "
                            "val_acc (or latency_ms) with 'nas fit --target'")
        self.extra_metrics = tuple(extra_metrics)
        super().__init__(cardinalities(space), objectives, constraints)
        self._check_available()
        from nas.spaces.cells import size_rule
        from nas.spaces.tables import GenomeTables, default_cost_rules

        rules = {**default_cost_rules(), "size_bytes": size_rule()}
        if self.latency is not None and self.latency.additive:
            rules["latency_ms"] = self.latency.rule
        self.tables = GenomeTables(space, rules=rules)
        self._ranges: dict[str, tuple[float, float]] = {}

    # -- what is available ------------------------------------------------------------------
    @property
    def accuracy_source(self) -> str | None:
        """``predictor``, ``measured`` or None."""
        if self.predictor is not None and getattr(self.predictor, "target", "val_acc") == "val_acc":
            return "predictor"
        if self.measured is not None:
            return "measured"
        return None

    @property
    def latency_source(self) -> str | None:
        if self.latency is not None:
            return "table"
        if self.predictor is not None and self.predictor.target == "latency_ms":
            return "predictor"
        return None

    def available_metrics(self) -> list[str]:
        names = list(COST_METRICS)
        if self.latency_source is not None:
            names += list(LATENCY_METRICS)
        if self.accuracy_source is not None:
            names += list(ACCURACY_METRICS)
        return names + [m for m in self.extra_metrics if m not in names]

    def _check_available(self) -> None:
        available = self.available_metrics()
        for name in self.metric_names():
            if name in available:
                continue
            if name in LATENCY_METRICS:
                raise UserError(f"metric {name!r} needs a latency table (--table, written by "
                                "'nas profile')")
            if name in ACCURACY_METRICS:
                raise UserError(f"metric {name!r} needs a predictor (--predictor, from 'nas fit') "
                                "or a trained supernet to measure it (--run)")
            raise UserError(f"metric {name!r} is not provided for space {self.space.name!r}; "
                            f"available: {', '.join(available)}")

    # -- batched metrics ----------------------------------------------------------------------
    def canonical(self, genes: np.ndarray) -> np.ndarray:
        return canonical(self.space, genes)

    @cached_property
    def _onehot(self) -> Any:
        from predictors.genome_onehot import GenomeOneHot

        return GenomeOneHot(self.space)

    def features(self, genes: np.ndarray) -> np.ndarray:
        """One-hot of resolution, widths, depths and active layers (inactive slots all zero)."""
        return self._onehot.transform(genes)

    def decode(self, genes: np.ndarray) -> list[Architecture]:
        return [decode(self.space, g) for g in np.atleast_2d(genes)]

    def metrics(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        return self._metrics(genes, set(self.metric_names()) | set(self.extra_metrics))

    def evaluate_constraints(self, genes: np.ndarray, which: Sequence[int]) -> np.ndarray:
        """Values (Optuna convention) of the constraints at indices ``which``, (n, k); computes
        only the metrics they need (no accuracy measurement unless one of them is on it)."""
        genes = self.validate_genes(genes)
        chosen = [self.constraints[j] for j in which]
        values = self._metrics(genes, {c.metric for c in chosen})
        if not chosen:
            return np.zeros((len(genes), 0))
        return np.stack([c.violation(values[c.metric]) for c in chosen], 1)

    def _metrics(self, genes: np.ndarray, wanted: set[str]) -> dict[str, np.ndarray]:
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        c = self.tables.costs(genes)
        out: dict[str, np.ndarray] = {
            "macs": c["macs"],
            "flops": 2.0 * c["macs"],
            "params": c["params"],
            "memory": c["memory"],
            "peak_memory": c["memory"],
            "param_memory": BYTES_PER_ELEMENT * c["params"],
            "size_bytes": c["size_bytes"],
        }
        archs: list[Architecture] | None = None

        def arch_list() -> list[Architecture]:
            nonlocal archs
            if archs is None:
                archs = self.decode(genes)
            return archs

        if self.latency is not None:
            latency = c["latency_ms"] if self.latency.additive else self.latency.predict(arch_list())
        elif self.latency_source == "predictor":
            latency = np.asarray(self.predictor.predict_genomes(genes), dtype=np.float64)
        else:
            latency = None
        if latency is not None:
            out["latency_ms"] = out["latency"] = latency
        if self.accuracy_source == "predictor":
            acc = np.asarray(self.predictor.predict_genomes(genes), dtype=np.float64)
        elif self.accuracy_source == "measured" and wanted & set(ACCURACY_METRICS):
            acc = self._measure_feasible(arch_list(), out)
        else:
            acc = None
        if acc is not None:
            out["val_acc"] = acc
            out["accuracy"] = PERCENT * acc
        if DEEPMAD in wanted:
            from nas.search.mp_objectives import deepmad_score

            out[DEEPMAD] = np.array([deepmad_score(self.space, a) for a in arch_list()])
        return out

    def _measure_feasible(self, archs: list[Architecture], values: Mapping[str, np.ndarray]
                          ) -> np.ndarray:
        """Measured val_acc of the architectures that meet every constraint not on accuracy; 0 for
        the others, which are never measured (constrained domination ranks an infeasible
        architecture by its violation alone, so its accuracy would not be used)."""
        ok = np.ones(len(archs), dtype=bool)
        for c in self.constraints:
            if c.metric not in ACCURACY_METRICS:
                ok &= c.satisfied(values[c.metric])
        acc = np.zeros(len(archs))
        keep = np.flatnonzero(ok)
        if keep.size:
            acc[keep] = self.measured([archs[i] for i in keep])
        return acc

    # -- exact, architecture by architecture --------------------------------------------------
    def exact_metrics(self, arch: Architecture) -> dict[str, float]:
        """The metrics of one architecture by the per-architecture functions (no genome tables)."""
        self.space.validate(arch)
        c = costs(self.space, arch).as_dict()
        c["peak_memory"] = c["memory"]
        out = {name: float(c[name]) for name in COST_METRICS}
        if self.latency is not None:
            out["latency_ms"] = out["latency"] = float(self.latency.predict([arch])[0])
        elif self.latency_source == "predictor":
            out["latency_ms"] = out["latency"] = float(self.predictor.predict([arch])[0])
        if self.accuracy_source == "predictor":
            acc = float(self.predictor.predict([arch])[0])
            out["val_acc"], out["accuracy"] = acc, PERCENT * acc
        elif self.accuracy_source == "measured":
            acc = float(self.measured([arch])[0])
            out["val_acc"], out["accuracy"] = acc, PERCENT * acc
        if DEEPMAD in self.extra_metrics:
            from nas.search.mp_objectives import deepmad_score

            out[DEEPMAD] = float(deepmad_score(self.space, arch))
        return out

    def violated(self, metrics: Mapping[str, float]) -> list[str]:
        """The constraints that exact ``metrics`` of one architecture break (no tolerance)."""
        return [str(c) for c in self.constraints if not bool(c.satisfied(metrics[c.metric]))]

    # -- feasibility ----------------------------------------------------------------------------
    def achievable_range(self, metric: str) -> tuple[float, float] | None:
        if metric not in self._ranges:
            found = self._range(metric)
            if found is None:
                return None
            self._ranges[metric] = found
        return self._ranges[metric]

    def _range(self, metric: str) -> tuple[float, float] | None:
        from nas.spaces.cells import cost_rules
        from nas.spaces.extremes import cost_extreme

        def extremes(unit_cost: Callable[[Any], float], combine: str) -> tuple[float, float]:
            return (cost_extreme(self.space, unit_cost, combine=combine, pick="min"),
                    cost_extreme(self.space, unit_cost, combine=combine, pick="max"))

        if metric in _COST_BASE:
            base, scale = _COST_BASE[metric]
            rule = cost_rules()[base]
            lo, hi = extremes(rule.unit_cost, rule.combine)
            return scale * lo, scale * hi
        if metric == "size_bytes":  # per unit, its smallest and its largest precision
            from nas.costs import unit_size_bytes

            sizes = [partial(unit_size_bytes, precision=p) for p in self.space.precisions]
            return (cost_extreme(self.space, lambda u: min(f(u) for f in sizes), pick="min"),
                    cost_extreme(self.space, lambda u: max(f(u) for f in sizes), pick="max"))
        if metric in LATENCY_METRICS and self.latency is not None and self.latency.additive:
            lo, hi = extremes(self.latency.rule.unit_cost, "sum")
            return lo + self.latency.rule.offset, hi + self.latency.rule.offset
        if metric in ACCURACY_METRICS and self._additive_accuracy():
            lo, hi = self._accuracy_extremes()
            scale = PERCENT if metric == "accuracy" else 1.0
            return scale * lo, scale * hi
        return None

    def _additive_accuracy(self) -> bool:
        return self.accuracy_source == "predictor" and bool(getattr(self.predictor, "is_additive",
                                                                    False))

    def linear_objective(self, sign: float = 1.0) -> Any:
        """The additive predictor as a MILP objective (``sign=-1``: its negation)."""
        from nas.search.mp_objectives import LinearObjective

        if not self._additive_accuracy():
            raise UserError("the MP search needs an additive predictor (ridge on one-hot features "
                            "without statistics: 'nas fit --model ridge --features onehot'), or "
                            "no predictor at all (it then maximises the DeepMAD score)")
        base = LinearObjective.from_model(self.space, self.predictor.estimator, name="val_acc")
        return LinearObjective(sign * base.coef, sign * base.intercept, name="val_acc")

    def _accuracy_extremes(self, bounds: Mapping[str, float] | None = None) -> tuple[float, float]:
        from nas.search.mp import MILPSearch

        hi = MILPSearch(self.space, self.linear_objective(), constraints=bounds,
                        costs=self.milp_costs()).solve().objective
        lo = -MILPSearch(self.space, self.linear_objective(-1.0), constraints=bounds,
                         costs=self.milp_costs()).solve().objective
        return float(lo), float(hi)

    def milp_costs(self) -> dict[str, Any]:
        """Extra MILP costs (``latency_ms`` when the table's latency is additive)."""
        if self.latency is not None and self.latency.rule is not None:  # boundaries linearised
            return {"latency_ms": self.latency.additive_cost()}
        return {}

    def milp_bounds(self, constraints: Sequence[Constraint] | None = None) -> dict[str, float] | None:
        """``{MILP metric: upper bound}`` for ``<=`` constraints the MILP models exactly; None if
        some constraint is of another kind (a ``>=``, an accuracy, a non-additive latency)."""
        exact = {*_COST_BASE, "size_bytes", *(LATENCY_METRICS if self.milp_costs() else ())}
        out: dict[str, float] = {}
        for c in self.constraints if constraints is None else constraints:
            if c.op != "<=" or c.metric not in exact:
                return None
            name = canonical_metric(c.metric)
            out[name] = min(c.bound, out.get(name, math.inf))
        return out

    def jointly_feasible(self) -> bool | None:
        """Exact when every constraint is a ``<=`` on a cost (and at most ``accuracy >=`` with an
        additive predictor): asks the MILP; otherwise unknown (None)."""
        from nas.search.mp import InfeasibleError as MILPInfeasible
        from nas.search.mp import MILPSearch

        if not self.constraints:
            return True
        costs_part = [c for c in self.constraints if c.metric not in ACCURACY_METRICS]
        acc_part = [c for c in self.constraints if c.metric in ACCURACY_METRICS]
        bounds = self.milp_bounds(costs_part)
        if bounds is None:
            return None
        if acc_part and (not self._additive_accuracy() or any(c.op != ">=" for c in acc_part)):
            return None
        try:
            if not acc_part:
                MILPSearch(self.space, constraints=bounds, costs=self.milp_costs()).check_feasible()
                return True
            best = MILPSearch(self.space, self.linear_objective(), constraints=bounds,
                              costs=self.milp_costs()).solve().objective
        except MILPInfeasible:
            return False
        for c in acc_part:
            value = PERCENT * best if c.metric == "accuracy" else best
            if not c.satisfied(value):
                return False
        return True

    def describe(self) -> dict[str, Any]:
        """What computes each metric (for search.json)."""
        out: dict[str, Any] = {"costs": "exact (nas.costs via genome tables)"}
        if self.latency is not None:
            out["latency_ms"] = {"source": "table", **self.latency.describe()}
        elif self.latency_source == "predictor":
            out["latency_ms"] = {"source": "predictor"}
        if self.accuracy_source == "predictor":
            card = getattr(self.predictor, "card", {}) or {}
            out["accuracy"] = {"source": "predictor", "model": card.get("model", {}).get("name"),
                               "encoder": card.get("encoder"), "n_train": card.get("n_train"),
                               "additive": bool(getattr(self.predictor, "is_additive", False))}
        elif self.accuracy_source == "measured":
            out["accuracy"] = {"source": "measured", "split": "val"}
        return out
