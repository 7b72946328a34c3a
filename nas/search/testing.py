"""The searcher conformance suite, shipped so that any searcher, ours or a user's, can be checked
(as Optuna ships ``optuna.testing`` and scikit-learn ``parametrize_with_checks``).

A searcher factory is ``factory(problem, seed) -> Searcher``. Each ``check_*`` function raises
``AssertionError`` on a breach of the :class:`~nas.search.base.Searcher` contract:

- :func:`check_ask_tell`: ``ask(n)`` hands out at most ``n`` canonical, new genomes, never one twice
  nor one already evaluated; a mismatched ``tell`` and saving with genomes in flight are refused;
- :func:`check_budget`: ``run(budget)`` evaluates at most ``budget`` genomes, all distinct;
- :func:`check_seeded`: the same seed gives the same search (and, with ``seed_matters``, another
  seed another one);
- :func:`check_resume`: a search saved mid-way (:func:`~nas.search.state.save_state`) and resumed
  into a searcher built with another seed continues exactly as the uninterrupted one;
- :func:`check_constraints`: everything emitted (front and best) meets every constraint.

:func:`check_searcher` runs them all. For a registered searcher, :func:`registered_case` gives a
factory and a problem that fits it (a toy problem with inactive genes, or a small one of our spaces
for searchers that need a space, such as the MILP)::

    from nas.search.testing import check_searcher, registered_case

    factory, problem = registered_case("annealing")
    check_searcher(factory, problem)
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.search.base import Searcher
from nas.search.problem import MetricProblem, Problem

Factory = Callable[[Problem, int], Searcher]
N_LAYERS = 3


class ToyProblem(MetricProblem):
    """A depth gene (0..2 -> 1..3 active layers) and per layer (op in 4, width in 3): 7 genes.

    Genes of inactive layers do not matter; :meth:`canonical` zeroes them, leaving 1,884 distinct
    networks among 5,184 genomes. Metrics (``accuracy``, ``latency_ms``, ``params``) are sums over
    active layers of seeded random tables, so the constraints' extremes are known exactly.
    """

    def __init__(self, objectives: Sequence[str] = ("max:accuracy",),
                 constraints: Sequence[str] = (), *, seed: int = 0) -> None:
        super().__init__([3] + [4, 3] * N_LAYERS, objectives, constraints)
        rng = np.random.default_rng(seed)
        self._acc = rng.normal(size=(N_LAYERS, 4, 3))
        self._lat = rng.uniform(0.5, 2.0, size=(N_LAYERS, 4, 3))
        self._params = rng.integers(1_000, 5_000, size=(N_LAYERS, 4, 3)).astype(float)
        self._all: dict[str, np.ndarray] | None = None

    def canonical(self, genes: np.ndarray) -> np.ndarray:
        genes = np.array(genes, dtype=np.int64, copy=True)
        for layer in range(N_LAYERS):
            inactive = genes[:, 0] < layer
            genes[inactive, 1 + 2 * layer: 3 + 2 * layer] = 0
        return genes

    def metrics(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        genes = np.atleast_2d(genes)
        acc = np.full(len(genes), 70.0)
        lat = np.full(len(genes), 1.0)
        params = np.full(len(genes), 10_000.0)
        for layer in range(N_LAYERS):
            active = genes[:, 0] >= layer
            op, width = genes[:, 1 + 2 * layer], genes[:, 2 + 2 * layer]
            acc += active * (self._acc[layer, op, width] + 0.5 * width * (op == 2))
            lat += active * self._lat[layer, op, width]
            params += active * self._params[layer, op, width]
        return {"accuracy": acc, "latency_ms": lat, "params": params}

    def all_metrics(self) -> dict[str, np.ndarray]:
        if self._all is None:
            grid = np.indices(tuple(self.cardinalities)).reshape(len(self.cardinalities), -1).T
            self._all = self.metrics(grid)
        return self._all

    def achievable_range(self, metric: str) -> tuple[float, float] | None:
        values = self.all_metrics().get(metric)
        return None if values is None else (float(values.min()), float(values.max()))

    def jointly_feasible(self) -> bool:
        values = self.all_metrics()
        ok = np.ones(len(values["accuracy"]), dtype=bool)
        for c in self.constraints:
            ok &= c.satisfied(values[c.metric])
        return bool(ok.any())


# ----- the checks --------------------------------------------------------------------------------
def _run(searcher: Searcher, budget: int) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a solver or small space may run out
        return searcher.run(budget)


def _assert_new_canonical(problem: Problem, genes: np.ndarray) -> None:
    np.testing.assert_array_equal(problem.canonical(genes), genes,
                                  err_msg="a proposed genome is not canonical")
    assert len(np.unique(genes, axis=0)) == len(genes), "a genome was proposed twice"


def check_ask_tell(factory: Factory, problem: Problem, *, rounds: int = 5) -> None:
    """ask/tell: at most n new canonical genomes per ask; bad tells and early saves refused."""
    searcher = factory(problem, 0)
    seen = np.zeros((0, problem.n_genes), dtype=np.int64)
    for n in (1, 3, 7, 2, 5)[:rounds]:
        genes = searcher.ask(n)
        assert len(genes) <= n, f"ask({n}) handed out {len(genes)} genomes"
        if len(genes) == 0:
            break
        if len(seen):
            dup = (genes[:, None, :] == seen[None, :, :]).all(axis=2).any()
            assert not dup, "ask() handed out a genome already evaluated"
        _assert_new_canonical(problem, genes)
        try:
            searcher.state_dict()
        except RuntimeError:
            pass
        else:
            raise AssertionError("state_dict() saved a searcher with genomes in flight")
        evaluation = problem.evaluate(genes)
        if len(genes) > 1:
            try:
                searcher.tell(genes, problem.evaluate(genes[:1]))
            except ValueError:
                pass
            else:
                raise AssertionError("tell() accepted fewer evaluations than genomes")
        searcher.tell(genes, evaluation)
        seen = np.concatenate([seen, genes])
    assert len(searcher.history) == len(seen)
    try:
        searcher.ask(0)
    except ValueError:
        pass
    else:
        raise AssertionError("ask(0) was accepted")


def check_budget(factory: Factory, problem: Problem, budget: int = 40) -> None:
    """``run(budget)`` evaluates at most ``budget`` genomes, all distinct and canonical."""
    result = _run(factory(problem, 0), budget)
    assert len(result) <= budget, f"run({budget}) evaluated {len(result)} genomes"
    assert len(result) > 0, f"run({budget}) evaluated nothing"
    _assert_new_canonical(problem, result.genes)


def check_seeded(factory: Factory, problem: Problem, budget: int = 40, *,
                 seed_matters: bool = True) -> None:
    """The same seed, the same search; with ``seed_matters``, another seed, another search."""
    a = _run(factory(problem, 3), budget)
    b = _run(factory(problem, 3), budget)
    np.testing.assert_array_equal(a.genes, b.genes, err_msg="same seed, other genomes")
    np.testing.assert_array_equal(a.objectives, b.objectives)
    if seed_matters:
        c = _run(factory(problem, 4), budget)
        assert not np.array_equal(a.genes, c.genes), "another seed gave the same search"


def check_resume(factory: Factory, problem: Problem, budget: int = 60,
                 state_dir: str | Path | None = None) -> None:
    """Saved mid-way and resumed (into a searcher built with another seed): as uninterrupted."""
    from nas.search.state import load_state, save_state

    full = _run(factory(problem, 11), budget)
    first = factory(problem, 11)
    _run(first, max(1, len(full) // 2 + 1))  # usually stops in the middle of a batch
    with tempfile.TemporaryDirectory() as tmp:
        path = save_state(first, Path(state_dir or tmp) / "state.json")
        resumed = load_state(factory(problem, 999), path)
    assert resumed.seed == 11, "the seed must come from the state file"
    rest = _run(resumed, budget)
    np.testing.assert_array_equal(rest.genes, full.genes,
                                  err_msg="the resumed search differs from the uninterrupted one")
    np.testing.assert_array_equal(rest.constraints, full.constraints)


def check_constraints(factory: Factory, problem: Problem, budget: int = 60) -> None:
    """Everything emitted (the feasible front and the best) meets every constraint."""
    assert problem.constraints, "check_constraints needs a problem with constraints"
    result = _run(factory(problem, 1), budget)
    emitted = list(result.front) + ([] if result.best is None else [result.best])
    assert emitted, "nothing feasible emitted"
    honest = problem.evaluate(result.genes[emitted])
    assert (honest.constraints <= 0).all(), "an emitted genome breaks a constraint"


def check_searcher(factory: Factory, problem: Problem, constrained: Problem | None = None, *,
                   budget: int = 40, resumable: bool = True, seed_matters: bool = True) -> None:
    """Every check above (the resume check only when ``resumable``; the constraint check on
    ``constrained``, a problem with constraints, when given)."""
    check_ask_tell(factory, problem)
    check_budget(factory, problem, budget)
    check_seeded(factory, problem, budget, seed_matters=seed_matters)
    if resumable:
        check_resume(factory, problem, budget + 20)
    if constrained is not None:
        check_constraints(factory, constrained, budget + 20)


# ----- registered searchers ----------------------------------------------------------------------
def precision_case(name: str, *, objectives: int = 2, bound: str = "size_bytes<=20KB",
                   **options: Any) -> tuple[Factory, Problem]:
    """A factory for the registered searcher ``name`` and hybrid-tiny with precision genes
    (fp32, int8): objectives ``min:flops`` then ``max:params`` (the MILP: ``max:params`` then
    ``min:size_bytes``), constraint ``bound`` (20 KB lies
    inside the space's size range, about 3.4 to 71 KB, so it cuts both ways)."""
    from nas.search.registry import make_searcher, searcher_spec
    from nas.search.space_problem import SpaceProblem
    from nas.spaces import load_space

    space = load_space("hybrid-tiny").with_precisions("fp32,int8")
    # the MILP sweeps a bound on a cost to minimise: its second objective is size_bytes
    names = (("max:params", "min:size_bytes") if searcher_spec(name).space_only
             else ("min:flops", "max:params"))
    problem = SpaceProblem(space, names[:objectives], (bound,))

    def factory(p: Problem, seed: int) -> Searcher:
        return make_searcher(name, p, seed=seed, **options)

    return factory, problem


def registered_case(name: str, *, objectives: int = 1, constrained: bool = False,
                    **options: Any) -> tuple[Factory, Problem]:
    """A factory for the registered searcher ``name`` and a problem that fits it.

    Most searchers get a :class:`ToyProblem`; those that need one of our spaces (the MILP) get
    hybrid-tiny with exact costs only (objectives ``min:flops`` then ``min:params``; constraint
    ``memory<=64KB``). ``options`` go to :func:`~nas.search.registry.make_searcher`.
    """
    from nas.search.registry import make_searcher, searcher_spec

    spec = searcher_spec(name)
    if spec.space_only:
        from nas.search.space_problem import SpaceProblem
        from nas.spaces import load_space

        objs = ("min:flops", "min:params")[:objectives]
        problem: Problem = SpaceProblem(load_space("hybrid-tiny"), objs,
                                        ("memory<=64KB",) if constrained else ())
        options = {"points": 12, **options}
    else:
        objs = ("max:accuracy", "min:latency_ms")[:objectives]
        cons = ("latency_ms<=4.5", "params<=18000") if constrained else ()
        problem = ToyProblem(objs, cons)

    def factory(p: Problem, seed: int) -> Searcher:
        return make_searcher(name, p, seed=seed, **options)

    return factory, problem
