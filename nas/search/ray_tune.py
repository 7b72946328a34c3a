"""Optuna search with Ray Tune trials (``nas search --algo optuna --ray-address ADDR``).

Each architecture is one Tune trial: a function trainable evaluates it with the search problem
(shared once through the object store with ``tune.with_parameters``) and reports every metric.
The search algorithm is Tune's own :class:`ray.tune.search.optuna.OptunaSearch` with our sampler
(TPE or NSGA-II, seeded), subclassed as :class:`ConstrainedOptunaSearch`:

- **Constraints.** Tune's ``OptunaSearch`` only passes metric values back to Optuna, so
  ``trial.set_constraint`` would never be called. Our constraints depend on the architecture only
  (FLOPs, params, memory, table latency, and accuracy when a predictor gives it), so
  :meth:`ConstrainedOptunaSearch.suggest` computes them at suggestion time and calls
  ``set_constraint`` on the Optuna trial before Tune runs it: Optuna's constrained TPE and NSGA-II
  then see exactly what they see in the in-process search. A constraint that needs the trial's
  result (accuracy measured by the supernet) is set in :meth:`on_trial_complete`, before the trial
  is told. No penalty is added to any objective.
- **Duplicates.** A suggestion equal to an evaluated architecture (after zeroing inactive slots)
  is told to Optuna at once with the stored values and never becomes a Tune trial; after
  ``max_duplicates`` in a row a random new architecture is enqueued.
- **Order.** Trials run one at a time by default (``max_concurrent``), so a seeded search gives
  the same trials on every run; more concurrent trials trade that for parallelism.

The history (genomes and reported metrics), the sampler's random state and, for the default
in-memory storage, a snapshot of the study go to the search's state file, so ``--resume`` continues
the same study.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.search.problem import Evaluation
from nas.search.result import SearchResult
from nas.search.space_problem import SpaceProblem

CHECKPOINT_SECONDS = 30.0


def evaluation_of(problem: SpaceProblem, metrics: Mapping[str, np.ndarray]) -> Evaluation:
    """Objectives and constraint values of the problem from reported metric arrays."""
    n = len(next(iter(metrics.values()))) if metrics else 0
    objectives = np.stack([o.sign * np.asarray(metrics[o.metric], float)
                           for o in problem.objectives], 1) if n else np.zeros((0, 0))
    if problem.constraints and n:
        constraints = np.stack([c.violation(metrics[c.metric]) for c in problem.constraints], 1)
    else:
        constraints = np.zeros((n, len(problem.constraints)))
    return Evaluation(objectives.reshape(n, len(problem.objectives)), constraints,
                      {k: np.asarray(v, float) for k, v in metrics.items()})


def _trainable(config: dict[str, Any], problem: SpaceProblem) -> None:
    """One Tune trial: evaluate the architecture and report every metric."""
    from ray import tune

    genes = np.array([[int(config[f"g{i}"]) for i in range(problem.n_genes)]], dtype=np.int64)
    genes = np.asarray(problem.canonical(genes), dtype=np.int64)
    ev = problem.evaluate(genes)
    report = {k: float(v[0]) for k, v in ev.metrics.items()}
    report["genome"] = " ".join(str(int(g)) for g in genes[0])
    tune.report(report)


def _cheap_constraints(problem: SpaceProblem) -> list[int]:
    """Indices of the constraints computable without running a trial."""
    slow = {"accuracy", "val_acc"} if problem.accuracy_source == "measured" else set()
    return [j for j, c in enumerate(problem.constraints) if c.metric not in slow]


def make_tune_searcher(problem: SpaceProblem, **kwargs: Any) -> Any:
    """A :class:`ConstrainedOptunaSearch` (defined lazily: Ray is an optional import)."""
    from ray.tune.search.optuna import OptunaSearch

    class ConstrainedOptunaSearch(OptunaSearch):
        """Tune's OptunaSearch that sets constraints at suggestion time and skips duplicates."""

        def __init__(self, problem: SpaceProblem, *, sampler: Any, storage: Any,
                     study_name: str, seed: int, max_duplicates: int = 100) -> None:
            from optuna.distributions import CategoricalDistribution

            space = {f"g{i}": CategoricalDistribution(list(range(int(c))))
                     for i, c in enumerate(problem.cardinalities)}
            modes = ["max" if d == "maximize" else "min" for d in problem.directions]
            metrics = list(problem.objective_names)
            super().__init__(space=space, metric=metrics if len(metrics) > 1 else metrics[0],
                             mode=modes if len(modes) > 1 else modes[0], sampler=sampler,
                             storage=storage, study_name=study_name)
            self.problem = problem
            self.rng = np.random.default_rng(seed)
            self.max_duplicates = max_duplicates
            self.cheap = _cheap_constraints(problem)
            self.genes: list[np.ndarray] = []  # evaluated genomes, in completion order
            self.metrics: list[dict[str, float]] = []
            self.index: dict[bytes, int] = {}
            self.pending: dict[str, bytes] = {}  # trial_id -> genome key
            self.duplicates = 0
            self.on_result: Callable[[], None] | None = None

        # -- helpers ----------------------------------------------------------------------
        def _genes(self, params: Mapping[str, Any]) -> np.ndarray:
            g = np.array([[int(params[f"g{i}"]) for i in range(self.problem.n_genes)]])
            return np.asarray(self.problem.canonical(g), dtype=np.int64)

        def _values(self, row: Mapping[str, float]) -> list[float]:
            return [float(row[m]) for m in self.problem.objective_names]

        def _constraint_values(self, row: Mapping[str, float]) -> dict[str, float]:
            return {str(c): float(c.violation(row[c.metric])) for c in self.problem.constraints}

        def _random_params(self) -> dict[str, int]:
            card = self.problem.cardinalities
            for _ in range(1000):
                g = self.problem.canonical((self.rng.random((1, len(card))) * card).astype(int))
                key = np.asarray(g, dtype=np.int64).tobytes()
                if key not in self.index and key not in self.pending.values():
                    return {f"g{i}": int(v) for i, v in enumerate(np.asarray(g)[0])}
            raise UserError("the space seems exhausted: no new architecture found")

        def save(self, checkpoint_path: str) -> None:
            """Tune's experiment checkpoint of the searcher: not written (the problem it holds
            need not pickle); the search's own state file is what ``--resume`` reads."""

        def restore(self, checkpoint_path: str) -> None:
            raise NotImplementedError("resume a 'nas search' with --resume, not through Tune")

        def restore_history(self, genes: np.ndarray, metrics: list[dict[str, float]]) -> None:
            for g, m in zip(genes, metrics):
                self.index[np.asarray(g, dtype=np.int64).tobytes()] = len(self.genes)
                self.genes.append(np.asarray(g, dtype=np.int64))
                self.metrics.append(dict(m))

        # -- Tune's Searcher interface ------------------------------------------------------
        def suggest(self, trial_id: str) -> dict | None:
            streak = 0
            while True:
                config = super().suggest(trial_id)
                if config is None:
                    return None
                ot_trial = self._ot_trials[trial_id]
                genes = self._genes(ot_trial.params)
                key = genes.tobytes()
                if key in self.index or key in self.pending.values():
                    # known: answer Optuna from the history (or drop a second copy in flight)
                    self._ot_trials.pop(trial_id)
                    if key in self.index:
                        row = self.metrics[self.index[key]]
                        for name, value in self._constraint_values(row).items():
                            ot_trial.set_constraint(name, value)
                        values = self._values(row)
                        self._ot_study.tell(ot_trial, values if len(values) > 1 else values[0])
                    else:
                        self._ot_study.tell(ot_trial, state=_pruned())
                    self.duplicates += 1
                    streak += 1
                    if streak >= self.max_duplicates:
                        self._ot_study.enqueue_trial(self._random_params())
                        streak = 0
                    continue
                if self.cheap:
                    ev = self.problem.evaluate_constraints(genes, self.cheap)
                    for j, value in zip(self.cheap, ev[0]):
                        ot_trial.set_constraint(str(self.problem.constraints[j]), float(value))
                self.pending[trial_id] = key
                return {f"g{i}": int(v) for i, v in enumerate(genes[0])}

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            key = self.pending.pop(trial_id, None)
            if result and key is not None and not error:
                row = {k: float(v) for k, v in result.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
                ot_trial = self._ot_trials.get(trial_id)
                if ot_trial is not None:
                    for j, c in enumerate(self.problem.constraints):
                        if j not in self.cheap:
                            ot_trial.set_constraint(str(c), float(c.violation(row[c.metric])))
                self.index[key] = len(self.genes)
                self.genes.append(np.frombuffer(key, dtype=np.int64).copy())
                self.metrics.append(row)
            super().on_trial_complete(trial_id, result=result, error=error)
            if self.on_result is not None:
                self.on_result()

    return ConstrainedOptunaSearch(problem, **kwargs)


def _pruned() -> Any:
    import optuna

    return optuna.trial.TrialState.PRUNED


def tune_search(
    problem: SpaceProblem,
    *,
    budget: int,
    seed: int,
    sampler: str | None,
    storage: Any,
    study_name: str,
    ray_address: str,
    population: int | None = None,
    progress: bool = True,
    state: dict[str, Any] | None = None,
    save_state: Callable[[Mapping[str, Any]], None] | None = None,
    max_concurrent: int = 1,
) -> tuple[SearchResult, dict[str, Any]]:
    """Run the search as Ray Tune trials until ``budget`` architectures are evaluated."""
    import optuna
    from ray import tune
    from tqdm.auto import tqdm

    from nas.distributed import ray_session
    from nas.search.optuna_resume import (
        replay_study,
        restore_sampler_rng,
        sampler_rng_state,
        study_snapshot,
    )
    from nas.search.optuna_search import make_sampler

    if problem.measured is not None:  # a trial is the unit of parallelism: measure inside it
        problem.measured.ray_address = None
    multi = len(problem.objectives) > 1
    sampler_name = sampler or ("nsga2" if multi else "tpe")
    ot_sampler = make_sampler(sampler_name, seed=seed, population_size=population or 20)
    in_memory = storage is None
    if in_memory:
        storage = optuna.storages.InMemoryStorage()
        if state is not None and "optuna_study" in state:
            replay_study(storage, state["optuna_study"])
    elif isinstance(storage, str):
        storage = optuna.storages.get_storage(storage)
    searcher = make_tune_searcher(problem, sampler=ot_sampler, storage=storage,
                                  study_name=study_name, seed=seed)
    resumed_at = 0
    if state is not None:
        hist = state.get("tune_history", {})
        genes = np.asarray(hist.get("genes", []), dtype=np.int64).reshape(-1, problem.n_genes)
        searcher.restore_history(genes, hist.get("metrics", []))
        if "optuna_rng" in state:
            restore_sampler_rng(ot_sampler, state["optuna_rng"])
        if "rng" in state:
            searcher.rng.bit_generator.state = state["rng"]
        resumed_at = len(searcher.genes)

    def checkpoint() -> None:
        if save_state is None:
            return
        payload: dict[str, Any] = {
            "tune_history": {"genes": [g.tolist() for g in searcher.genes],
                             "metrics": searcher.metrics},
            "optuna_rng": sampler_rng_state(ot_sampler),
            "rng": searcher.rng.bit_generator.state,
        }
        if in_memory:
            payload["optuna_study"] = study_snapshot(searcher._ot_study)
        save_state(payload)

    remaining = budget - len(searcher.genes)
    start = time.perf_counter()
    if remaining > 0:
        last = [time.perf_counter()]
        with tqdm(total=budget, initial=len(searcher.genes), desc="nas search (optuna, Ray Tune)",
                  unit="trial", disable=not progress, dynamic_ncols=True) as bar:
            def on_result() -> None:
                bar.n = len(searcher.genes)
                bar.refresh()
                if time.perf_counter() - last[0] >= CHECKPOINT_SECONDS:
                    checkpoint()
                    last[0] = time.perf_counter()

            searcher.on_result = on_result
            address = None if ray_address == "local" else ray_address
            # Tune's own experiment folder is temporary: evaluated.csv holds every trial, and its
            # JSON-lines result files would only confuse 'nas export --arch ID' in the run folder.
            with ray_session(address), tempfile.TemporaryDirectory(prefix="nas-tune-") as tmp:
                tuner = tune.Tuner(
                    tune.with_parameters(_trainable, problem=problem),
                    tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining,
                                                max_concurrent_trials=max_concurrent),
                    run_config=tune.RunConfig(name=study_name, storage_path=tmp, verbose=0),
                )
                tuner.fit()
    checkpoint()
    seconds = time.perf_counter() - start
    genes = (np.stack(searcher.genes) if searcher.genes
             else np.zeros((0, problem.n_genes), dtype=np.int64))
    names = list(searcher.metrics[0]) if searcher.metrics else []
    metrics = {k: np.array([m[k] for m in searcher.metrics], dtype=np.float64) for k in names}
    if problem.measured is not None and "val_acc" in metrics:
        ids = [a.arch_id() for a in problem.decode(genes)]
        problem.measured.remember(ids, metrics["val_acc"])
    ev = evaluation_of(problem, metrics) if len(genes) else Evaluation.concat(
        [], len(problem.objectives), len(problem.constraints))
    result = SearchResult(genes, ev.objectives, ev.constraints, dict(ev.metrics),
                          problem.objective_names, problem.directions, problem.constraint_names,
                          "optuna+ray_tune", seed)
    info = {"sampler": sampler_name, "study_name": study_name,
            "storage": "in memory" if in_memory else type(storage).__name__,
            "trials": len(searcher.genes) - resumed_at, "duplicate_suggestions": searcher.duplicates,
            "max_concurrent_trials": max_concurrent, "seconds": round(seconds, 3),
            "resumed_at": resumed_at,
            "constraints_at_suggestion": [str(problem.constraints[j]) for j in searcher.cheap]}
    return result, info
