"""An ask/tell study over the architectures of a space, in Optuna's shape.

    study = nas.create_study(space, directions={"acc": "max", "latency_ms": "min"})
    for _ in range(50):
        trial = study.ask()                   # trial.arch: a new Architecture, never a duplicate
        acc, ms = my_evaluation(trial.arch)   # your own training loop, device, cluster ...
        study.tell(trial, {"acc": acc, "latency_ms": ms})
    study.best_trials                         # the feasible Pareto front

The metrics are yours, named as you like; the proposals come from any registered searcher
(:func:`nas.search.registry.searcher_names`: evolution, random, optuna, ...), which only ever sees
the values told. ``constraints`` (``"params<=50K"``, ``"latency_ms<=5"``) are checked on the told
values, and on the architecture's exact costs (flops, macs, params, memory, param_memory) which
every trial carries in ``trial.costs`` without being told. With ``storage`` (an Optuna storage
URL such as ``sqlite:///study.db``) every told trial is also written to an Optuna study that
Optuna's own tools open (named parameters, architecture and costs as user attributes: see
:mod:`nas.search.optuna_publish`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.arch import Architecture
from nas.errors import UserError
from nas.search.constraints import Constraint, Objective, parse_constraints
from nas.search.problem import Evaluation, MetricProblem
from nas.spaces.ops import canonical, cardinalities, decode
from nas.spaces.schema import SearchSpace

COST_NAMES: tuple[str, ...] = ("flops", "macs", "params", "memory", "param_memory")
_DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}


def _exact_costs(space: SearchSpace, arch: Architecture) -> dict[str, float]:
    from nas.costs import costs

    c = costs(space, arch)
    return {
        "flops": float(c.flops), "macs": float(c.macs), "params": float(c.params),
        "memory": float(c.peak_memory_bytes), "param_memory": float(c.param_memory_bytes),
    }


class _ToldProblem(MetricProblem):
    """The genome layout of a space for a searcher; metrics come only from :meth:`Study.tell`."""

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective],
                 constraints: Sequence[Constraint]) -> None:
        self.space = space
        super().__init__(cardinalities(space), objectives, constraints)

    def canonical(self, genes: np.ndarray) -> np.ndarray:
        return canonical(self.space, genes)

    def decode(self, genes: np.ndarray) -> list[Architecture]:
        return [decode(self.space, g) for g in np.atleast_2d(genes)]

    def metrics(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        raise UserError("a study's metrics are told (study.tell), not computed; "
                        "use nas.run_search for a search that computes them")


@dataclass
class Trial:
    """One proposed architecture: ``number`` (0, 1, ...), ``arch``, its exact ``costs``, and
    after :meth:`Study.tell` its ``values`` and ``state`` (``running``, ``complete``)."""

    number: int
    arch: Architecture
    costs: dict[str, float]
    values: dict[str, float] = field(default_factory=dict)
    state: str = "running"
    user_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def arch_id(self) -> str:
        return self.arch.arch_id()

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v:.4g}" for k, v in self.values.items())
        return (f"Trial(number={self.number}, state={self.state!r}, arch='{self.arch.to_str()}'"
                + (f", {values}" if values else "") + ")")


class Study:
    """Ask/tell over ``space`` (see the module docstring). ``directions``: metric name ->
    ``"max"``/``"min"`` (order kept: the first is the main objective). ``algo``: a registered
    searcher; ``options`` go to it (``population``, ...). Same seed and same told values, same
    proposals."""

    def __init__(
        self,
        space: SearchSpace | str,
        directions: Mapping[str, str],
        *,
        constraints: Sequence[str | Constraint] = (),
        algo: str = "evolution",
        seed: int = 0,
        storage: Any = None,
        study_name: str | None = None,
        **options: Any,
    ) -> None:
        from nas.search.registry import make_searcher
        from nas.spaces import load_space

        self.space = space if isinstance(space, SearchSpace) else load_space(str(space))
        if not directions:
            raise UserError("a study needs at least one metric direction, e.g. {'acc': 'max'}")
        objectives = []
        for name, direction in directions.items():
            if str(direction).lower() not in _DIRECTIONS:
                raise UserError(f"direction of {name!r}: {direction!r}; expected 'max' or 'min'")
            objectives.append(Objective(str(name), _DIRECTIONS[str(direction).lower()]))
        self.objectives = tuple(objectives)
        self.constraints = parse_constraints(constraints)
        self.algo = algo
        self.problem = _ToldProblem(self.space, self.objectives, self.constraints)
        self.searcher = make_searcher(algo, self.problem, seed=seed, **options)
        self.trials: list[Trial] = []
        self._genes: dict[int, np.ndarray] = {}
        self.publisher = None
        if storage is not None:
            from nas.search.optuna_publish import StudyPublisher, open_storage

            name = study_name or f"nas-study-{self.space.name}-seed{seed}"
            self.publisher = StudyPublisher(open_storage(storage), name, self.problem)

    # ----- ask / tell
    def ask(self) -> Trial:
        """A new architecture to evaluate (never one asked before)."""
        genes = self.searcher.ask(1)
        if len(genes) == 0:
            raise UserError(f"the space {self.space.name!r} has no architecture left to ask")
        arch = decode(self.space, genes[0])
        trial = Trial(len(self.trials), arch, _exact_costs(self.space, arch))
        self.trials.append(trial)
        self._genes[trial.number] = genes[0]
        return trial

    def tell(self, trial: Trial | int, values: Mapping[str, float]) -> Trial:
        """The measured ``values`` of ``trial`` (its number or the object): every direction's
        metric, and every constrained metric that is not an exact cost."""
        number = trial.number if isinstance(trial, Trial) else int(trial)
        if number not in self._genes:
            told = "already told" if 0 <= number < len(self.trials) else "never asked"
            raise UserError(f"trial {number}: {told}")
        known = {**self.trials[number].costs, **{k: float(v) for k, v in values.items()}}
        missing = [n for n in self.problem.metric_names() if n not in known]
        if missing:
            raise UserError(f"trial {number}: values of {missing} missing (told {sorted(values)})")
        if not all(np.isfinite(known[n]) for n in self.problem.metric_names()):
            raise UserError(f"trial {number}: non-finite values {dict(values)}")
        objectives = np.array([[o.sign * known[o.metric] for o in self.objectives]])
        constraints = np.array([[c.violation(known[c.metric]) for c in self.constraints]])
        evaluation = Evaluation(objectives, constraints.reshape(1, len(self.constraints)),
                                {k: np.array([v]) for k, v in known.items()})
        genes = self._genes.pop(number)
        self.searcher.tell(genes[None, :], evaluation)
        if self.publisher is not None:  # one write per told trial: your loop is the slow part
            self.publisher.add(genes, objectives[0], evaluation.constraints[0],
                               {k: float(v[0]) for k, v in evaluation.metrics.items()})
            self.publisher.flush()
        record = self.trials[number]
        record.values = {k: float(v) for k, v in values.items()}
        record.state = "complete"
        return record

    def optimize(self, func: Any, n_trials: int) -> None:
        """``n_trials`` rounds of ask, ``func(arch) -> {metric: value}``, tell."""
        for _ in range(n_trials):
            trial = self.ask()
            self.tell(trial, func(trial.arch))

    # ----- results
    def feasible(self, trial: Trial) -> bool:
        known = {**trial.costs, **trial.values}
        return all(bool(c.satisfied(known[c.metric])) for c in self.constraints)

    @property
    def best_trials(self) -> list[Trial]:
        """The complete, feasible trials no other one dominates, by the first metric."""
        from nas.search.pareto import nondominated_mask

        done = [t for t in self.trials if t.state == "complete" and self.feasible(t)]
        if not done:
            return []
        points = np.array([[o.sign * t.values[o.metric] for o in self.objectives] for t in done])
        front = [done[i] for i in np.flatnonzero(nondominated_mask(points))]
        first = self.objectives[0]
        return sorted(front, key=lambda t: first.sign * t.values[first.metric])

    @property
    def best_trial(self) -> Trial:
        """The best trial of a single-objective study (Optuna's rule: several objectives -> use
        :attr:`best_trials`)."""
        if len(self.objectives) != 1:
            raise UserError("best_trial is for one objective; use best_trials (the Pareto front)")
        front = self.best_trials
        if not front:
            raise UserError("no complete feasible trial yet")
        return front[0]

    def trials_dataframe(self) -> Any:
        """One row per trial: number, state, arch_id, arch, told values and exact costs."""
        import pandas as pd

        return pd.DataFrame([
            {"number": t.number, "state": t.state, "arch_id": t.arch_id, "arch": t.arch.to_str(),
             **{f"values_{k}": v for k, v in t.values.items()}, **t.costs}
            for t in self.trials
        ])

    def __len__(self) -> int:
        return len(self.trials)

    def __repr__(self) -> str:
        directions = ", ".join(str(o) for o in self.objectives)
        done = sum(t.state == "complete" for t in self.trials)
        return (f"Study(space={self.space.name!r}, algo={self.algo!r}, objectives=[{directions}], "
                f"constraints={len(self.constraints)}, trials={len(self.trials)} ({done} complete))")


def create_study(
    space: SearchSpace | str,
    directions: Mapping[str, str] | None = None,
    *,
    direction: str | None = None,
    metric: str = "value",
    **kwargs: Any,
) -> Study:
    """A :class:`Study`; ``direction="max"`` (with ``metric``) is the single-objective form."""
    if directions is None:
        if direction is None:
            raise UserError("give directions={'acc': 'max', ...} or direction='max'")
        directions = {metric: direction}
    elif direction is not None:
        raise UserError("give directions or direction, not both")
    return Study(space, directions, **kwargs)


__all__ = ["COST_NAMES", "Study", "Trial", "create_study"]
