"""``run_search``: constrained search over one of our spaces, end to end, resumable.

The steps, one module each: :class:`~nas.search.job.SearchJob` checks what was asked;
:mod:`~nas.search.run_setup` loads the inputs and builds a
:class:`~nas.search.space_problem.SpaceProblem` (exact costs, table latency, predicted or measured
accuracy); :func:`~nas.search.feasibility.ensure_feasible` proves the constraints feasible before
anything is evaluated (or raises :class:`~nas.search.feasibility.InfeasibleError` naming the
smallest achievable value of each constrained quantity: exact, by dynamic programming and the
MILP); :mod:`~nas.search.runners` runs the searcher that :func:`~nas.search.registry.make_searcher`
builds (in process, :mod:`~nas.search.drive`, or as Ray Tune trials, :mod:`~nas.search.ray_tune`;
the MILP once, :mod:`~nas.search.mp_searcher`); :mod:`~nas.search.finish` re-checks every emitted
architecture with the per-architecture functions and writes the outputs of
:mod:`nas.search.outputs`.

Algorithms: every name of :func:`~nas.search.registry.searcher_names` (``nas search --algo``):
``evolution`` (NSGA-II for several objectives, regularised evolution for one), ``random``,
``guided``, ``optuna`` (TPE or NSGA-II with ``trial.set_constraint``) and ``mp`` (the exact MILP
of :mod:`nas.search.mp`: the top solutions for one objective, a Pareto front by sweeping the bound
of a cost objective for two), among others.

Resuming (``resume=True``): the state file (written every 30 s, after each refinement round and
at the end) holds the searcher's full state (history, RNG, queue, population), the refinement
measurements and the settings; for Optuna also the sampler's random state and, for the default
in-memory storage, a snapshot of the study (:mod:`nas.search.optuna_resume`). A resumed search
with the same settings gives the same evaluations as an uninterrupted one (tested for evolution,
random, optuna and refinement). With a user's Optuna storage the trials come from the storage, so
trials told after the last checkpoint of an interrupted run are in the study but not in the
history; the search goes on correctly but is then no longer identical to an uninterrupted one.

Accuracy measured with the supernet is never measured for an architecture that breaks a
constraint on another metric (its accuracy is recorded as 0: constrained domination ranks it by
its violation alone).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from nas.search.constraints import Constraint, Objective
from nas.search.emit import emitted_front
from nas.search.feasibility import ensure_feasible
from nas.search.finish import SearchOutcome, finish
from nas.search.job import SearchJob
from nas.search.run_setup import model_warnings, prepare
from nas.search.state import read_run_state
from nas.spaces import SearchSpace

__all__ = ["SearchJob", "SearchOutcome", "emitted_front", "run_job", "run_search"]


def run_job(job: SearchJob) -> SearchOutcome:
    """Run a checked :class:`SearchJob`: load, prove feasible, search, re-check, write."""
    from nas.search.runners import run_ask_tell, run_solver

    t_total = time.perf_counter()
    run = prepare(job)
    t = time.perf_counter()
    run.report = ensure_feasible(run.problem)
    run.info["feasibility_s"] = time.perf_counter() - t
    run.info["warnings"] = model_warnings(run.problem)
    if job.resume and run.state_path is not None and run.state_path.exists():
        run.state = read_run_state(run.state_path, run.settings)
    result = run_solver(run) if job.spec.solver else run_ask_tell(run)
    return finish(run, result, t_total)


def run_search(
    space: SearchSpace | str | os.PathLike,
    *,
    objectives: Sequence[str | Objective],
    constraints: Sequence[str | Constraint] = (),
    algo: str = "evolution",
    budget: int = 1000,
    seed: int = 0,
    predictor: Any = None,
    table: Any = None,
    run_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    validate_every: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    sampler: str | None = None,
    storage: Any = None,
    study_name: str | None = None,
    resume: bool = False,
    population: int | None = None,
    mp_points: int | None = None,
    validate_top: int = 5,
    samples: str | os.PathLike | None = None,
    workers: int = 1,
    device: str = "cpu",
    eval_settings: Any = None,
    command: str | None = None,
) -> SearchOutcome:
    """Search ``space`` and (with ``out``) write front.csv, evaluated.csv, pareto.png,
    front/<arch_id>.json, search.json and state.json. A keyword front end to
    :class:`SearchJob` and :func:`run_job`.

    ``objectives``/``constraints``: strings (``"max:accuracy"``, ``"latency_ms<=5"``) or parsed
    objects. ``predictor``: a directory written by ``nas fit`` or an ``ArchPredictor``; ``table``:
    a latency table path or ``LatencyTable``; ``run_dir``: a ``nas train`` run (accuracy is then
    MEASURED when no predictor is given; with a predictor and ``validate_every`` the search is
    refined LINAS-style, see :mod:`nas.search.refine`). ``algo``: a registered searcher
    (:func:`~nas.search.registry.searcher_names`); optuna takes ``sampler`` (tpe or nsga2),
    ``storage`` (an Optuna storage URL or object, default in memory) and ``study_name``; mp takes
    ``mp_points`` (MILP solutions, default min(budget, 20)). ``ray_address`` (``"local"``,
    ``"auto"``, ``"host:port"``): Optuna trials as Ray Tune trials; measurements as Ray tasks.
    ``population``: NSGA-II (default 20), regularised evolution (default 50) or Optuna NSGA-II
    (default 20) population, at least 2. ``resume``: continue the search in ``out`` (same
    settings; ``budget`` may grow).

    Raises :class:`~nas.errors.UserError` before evaluating anything for bad inputs, and
    :class:`~nas.search.feasibility.InfeasibleError` (a UserError) for constraints no
    architecture meets, naming the smallest achievable value of each constrained quantity.
    """
    job = SearchJob(
        space, tuple(objectives), tuple(constraints), algo=algo, budget=budget, seed=seed,
        predictor=predictor, table=table, run_dir=run_dir, out=out,
        validate_every=validate_every, validate_top=validate_top, ray_address=ray_address,
        progress=progress, sampler=sampler, storage=storage, study_name=study_name,
        resume=resume, population=population, mp_points=mp_points, samples=samples,
        workers=workers, device=device, eval_settings=eval_settings, command=command,
    )
    return run_job(job)
