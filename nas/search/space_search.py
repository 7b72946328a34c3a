"""``run_search``: constrained search over one of our spaces, end to end, resumable.

Builds a :class:`~nas.search.space_problem.SpaceProblem` (exact costs, table latency, predicted or
measured accuracy), proves the constraints feasible before anything is evaluated (or raises
:class:`~nas.search.feasibility.InfeasibleError` naming the smallest achievable value of each
constrained quantity: exact, by dynamic programming and the MILP), runs the searcher, re-checks
every emitted architecture with the per-architecture functions, and writes the outputs of
:mod:`nas.search.outputs`.

Algorithms: ``evolution`` (NSGA-II for several objectives, regularised evolution for one),
``random``, ``optuna`` (TPE or NSGA-II with ``trial.set_constraint``; with ``ray_address``, trials
run as Ray Tune trials, see :mod:`nas.search.ray_tune`) and ``mp`` (the exact MILP of
:mod:`nas.search.mp`: the top solutions for one objective, a Pareto front by sweeping the bound of
a cost objective for two).

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

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Architecture
from nas.errors import IncompatibleFileError, UserError
from nas.io import atomic_write_json
from nas.search.base import Searcher
from nas.search.constraints import Constraint, Objective, parse_constraints, parse_objective
from nas.search.feasibility import FeasibilityReport, ensure_feasible
from nas.search.outputs import FrontMember, write_outputs
from nas.search.pareto import feasible_front_mask
from nas.search.problem import Evaluation
from nas.search.result import SearchResult
from nas.search.space_problem import (
    ACCURACY_METRICS,
    DEEPMAD,
    MeasuredAccuracy,
    SpaceProblem,
)
from nas.spaces import SearchSpace, encode, load_space

log = logging.getLogger(__name__)

ALGOS: tuple[str, ...] = ("evolution", "random", "optuna", "mp")
SAMPLERS: tuple[str, ...] = ("tpe", "nsga2")
STATE_FILE = "state.json"
STATE_FORMAT = "nas.search.run-state/1"
SUMMARY_FORMAT = "nas.search.run/1"
DEFAULT_MP_POINTS = 20
# Regularised evolution: population 50, tournaments of 10, 10 children per batch. On hybrid-cifar
# with a ridge predictor under a latency bound (3 seeds) it beat the searcher's own default
# (20, 5, 1) at 1,000-20,000 evaluations (77.98 vs 77.45 predicted accuracy at 1,000), tied it at
# 200, and ran 1.7x faster; see results/benchmarks/search_hybrid.md.
RE_POPULATION = 50
CHECKPOINT_SECONDS = 30.0
_REL_TOL = 1e-9  # vectorised vs per-architecture float metrics (latency, predicted accuracy)
_MILP_OBJECTIVE = {"latency": "latency_ms", "peak_memory": "memory", "param_memory": "params"}


# ----- the outcome ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchOutcome:
    """What :func:`run_search` returns: the emitted front (exact metrics), the whole history, the
    summary written to ``search.json`` and the paths of the files written (empty without ``out``)."""

    front: list[FrontMember]
    result: SearchResult
    summary: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def archs(self) -> list[Architecture]:
        return [m.arch for m in self.front]

    @property
    def best(self) -> FrontMember | None:
        """The front member best on the first objective (front is sorted that way)."""
        return self.front[0] if self.front else None


# ----- inputs -----------------------------------------------------------------------------------------
def _space(space: SearchSpace | str | os.PathLike) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else load_space(str(space))


def _predictor(predictor: Any, space: SearchSpace) -> Any:
    if predictor is None or not isinstance(predictor, (str, os.PathLike)):
        return predictor
    from nas.sample.predictor import load_predictor_for

    return load_predictor_for(space, predictor)


def _table(table: Any, space: SearchSpace) -> Any:
    if table is None or not isinstance(table, (str, os.PathLike)):
        return table
    from nas.latency.table import LatencyTable

    return LatencyTable.load(table, expected_space_hash=space.hash())


def _label(value: Any) -> str | None:
    """A path as given, or the kind of object passed in its place."""
    if value is None or isinstance(value, (str, os.PathLike)):
        return None if value is None else str(value)
    return f"<{type(value).__name__} object>"


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _table_digest(table: Any) -> str | None:
    if table is None:
        return None
    entries = {k: e.median_ms for k, e in sorted(table.entries.items())}
    return _digest({"entries": entries, "meta": table.meta.to_dict()})


def _objectives(objectives: Sequence[str | Objective]) -> tuple[Objective, ...]:
    out = tuple(o if isinstance(o, Objective) else parse_objective(o) for o in objectives)
    if not out:
        raise UserError("give at least one objective, e.g. --objective max:accuracy")
    if len({o.metric for o in out}) != len(out):
        raise UserError(f"objectives {[str(o) for o in out]} name a metric twice")
    return out


# ----- searchers -------------------------------------------------------------------------------------
def make_space_searcher(
    algo: str,
    problem: SpaceProblem,
    *,
    seed: int,
    population: int | None = None,
    sampler: str | None = None,
    storage: Any = None,
    study_name: str | None = None,
) -> Searcher:
    """The searcher of ``algo`` (evolution, random, optuna) for ``problem``."""
    from nas.search.evolution import NSGA2, RegularizedEvolution
    from nas.search.random_search import RandomSearch

    multi = len(problem.objectives) > 1
    if algo == "random":
        return RandomSearch(problem, seed=seed, batch_size=64)
    if algo == "evolution":
        if multi:
            kw = {} if population is None else {"population_size": population}
            return NSGA2(problem, seed=seed, **kw)
        pop = population or RE_POPULATION
        return RegularizedEvolution(problem, seed=seed, population_size=pop,
                                              sample_size=max(2, pop // 5),
                                              batch_size=max(1, pop // 5))
    if algo == "optuna":
        from nas.search.optuna_search import OptunaSearch

        sampler = sampler or ("nsga2" if multi else "tpe")
        if sampler not in SAMPLERS:
            raise UserError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
        return OptunaSearch(problem, seed=seed, sampler=sampler, storage=storage,
                                      study_name=study_name, population_size=population or 20)
    raise UserError(f"--algo {algo!r}: expected one of {', '.join(ALGOS)}")


# ----- the emitted front ---------------------------------------------------------------------------
def emitted_front(problem: SpaceProblem, result: SearchResult) -> tuple[list[FrontMember], int]:
    """The feasible Pareto front, every member re-checked with the per-architecture functions.

    Each member's metrics are recomputed architecture by architecture (:meth:`exact_metrics`) and
    must equal the vectorised ones (a mismatch is a bug and raises); a member that breaks a
    constraint by the exact values (float rounding at a bound) is never emitted: it is dropped and
    the front recomputed. Returns the members (best first on the first objective) and how many were
    dropped.
    """
    ok = result.feasible.copy()
    checked: dict[int, FrontMember] = {}
    dropped = 0
    while True:
        mask = feasible_front_mask(result.objectives, np.where(ok, 0.0, 1.0))
        idx = np.flatnonzero(mask)
        idx = idx[np.lexsort(result.objectives[idx].T[::-1])]
        bad = False
        for i in idx.tolist():
            if i in checked:
                continue
            arch = problem.decode(result.genes[i])[0]
            exact = problem.exact_metrics(arch)
            _check_consistent(exact, result, i)
            if problem.violated(exact):
                ok[i] = False
                dropped += 1
                bad = True
                log.warning("front member %s breaks %s by its exact metrics; not emitted",
                            arch.arch_id(), problem.violated(exact))
                continue
            checked[i] = FrontMember(i, arch, tuple(int(v) for v in result.genes[i]), exact)
        if not bad:
            return [checked[i] for i in idx.tolist()], dropped


def _check_consistent(exact: Mapping[str, float], result: SearchResult, i: int) -> None:
    for name, value in exact.items():
        if name not in result.metrics:
            continue
        got = float(result.metrics[name][i])
        if abs(got - value) > _REL_TOL * max(1.0, abs(value)):
            raise RuntimeError(
                f"{name} of genome {result.genes[i].tolist()}: vectorised {got!r} != "
                f"per-architecture {value!r}; the genome tables are wrong"
            )


# ----- the MILP ------------------------------------------------------------------------------------
def _mp_genes(
    problem: SpaceProblem, points: int, progress: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """Solve with :class:`~nas.search.mp.MILPSearch`: the genomes of its solutions and a record."""
    from nas.search.mp import MILPSearch
    from nas.search.mp_objectives import CostObjective

    objectives = problem.objectives
    if len(objectives) > 2:
        raise UserError("--algo mp handles 1 or 2 objectives (a front by sweeping one bound); "
                        "use --algo evolution for more")
    bounds = problem.milp_bounds()
    if bounds is None:
        raise UserError(
            "--algo mp takes upper bounds (<=) on flops, macs, params, memory, param_memory and "
            f"an additive table latency only; got {', '.join(problem.constraint_names)}"
        )
    primary = next((o for o in objectives if o.metric in (*ACCURACY_METRICS, DEEPMAD)),
                   objectives[0])
    if primary.metric in ACCURACY_METRICS:
        objective, kind = problem.linear_objective(), "additive predictor (ridge on one-hot)"
    elif primary.metric == DEEPMAD:
        objective, kind = None, "DeepMAD expressiveness score (no predictor given)"
    else:
        objective = CostObjective(_MILP_OBJECTIVE.get(primary.metric, primary.metric),
                                  maximize=primary.direction == "maximize")
        kind = f"cost {primary.metric}"
    search = MILPSearch(problem.space, objective, constraints=bounds, costs=problem.milp_costs())
    start = time.perf_counter()
    swept = None
    if len(objectives) == 1:
        sols = search.top_k(points, progress=progress)
    else:
        other = next(o for o in objectives if o is not primary)
        if other.direction != "minimize" or other.metric in (*ACCURACY_METRICS, DEEPMAD):
            raise UserError(f"--algo mp sweeps a bound on a cost to minimise; {other} is not one")
        swept = _MILP_OBJECTIVE.get(other.metric, other.metric)
        sols = search.pareto_front(swept, n_points=max(2, points), progress=progress)
    seconds = time.perf_counter() - start
    genes = np.stack([encode(problem.space, s.arch) for s in sols])
    record = {
        "objective": kind,
        "swept": swept,
        "points": points,
        "solutions": len(sols),
        "seconds": round(seconds, 3),
        "problem_size": search.problem_size(),
        "statuses": sorted({s.status for s in sols}),
        "max_mip_gap": max(float(s.mip_gap) for s in sols),
    }
    return genes, record


def _result_of(problem: SpaceProblem, genes: np.ndarray, algorithm: str, seed: int
               ) -> SearchResult:
    genes = np.unique(np.asarray(problem.canonical(genes), dtype=np.int64), axis=0)
    ev = problem.evaluate(genes) if len(genes) else Evaluation.concat(
        [], len(problem.objectives), len(problem.constraints))
    return SearchResult(genes, ev.objectives, ev.constraints, dict(ev.metrics),
                        problem.objective_names, problem.directions, problem.constraint_names,
                        algorithm, seed)


# ----- state -------------------------------------------------------------------------------------------
def _write_state(path: Path, settings: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
    atomic_write_json(path, {"format": STATE_FORMAT, "settings": dict(settings), **payload})


def _read_state(path: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IncompatibleFileError(f"{path}: not a readable search state ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise IncompatibleFileError(f"{path}: not a 'nas search' state file ({STATE_FORMAT})")
    old = state.get("settings", {})
    diffs = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if diffs:
        shown = "; ".join(f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now" for k in diffs)
        raise IncompatibleFileError(
            f"{path} holds a search with other settings ({shown}); resume with the same settings "
            "or choose another --out"
        )
    return state


# ----- the loop ----------------------------------------------------------------------------------
@dataclass
class _Clock:
    evaluate: float = 0.0
    refine: float = 0.0
    search: float = 0.0
    search_cpu: float = 0.0  # CPU seconds of this process during the search (steadier when shared)


def _drive(
    searcher: Searcher,
    budget: int,
    *,
    refiner: Any,
    clock: _Clock,
    checkpoint: Any,
    progress: bool,
    desc: str,
) -> None:
    """ask/tell until ``budget`` evaluations, refining at multiples of ``refiner.every``."""
    from tqdm.auto import tqdm

    problem = searcher.problem
    last_save = time.perf_counter()
    start, start_cpu = time.perf_counter(), time.process_time()
    with tqdm(total=budget, initial=min(len(searcher.history), budget), desc=desc, unit="eval",
              disable=not progress, dynamic_ncols=True) as bar:
        while len(searcher.history) < budget:
            n = len(searcher.history)
            stop = budget if refiner is None else min(budget, refiner.next_stop(n))
            genes = searcher.ask(stop - n)
            if len(genes) == 0:
                warnings.warn(f"no new architecture left to propose after {n} evaluations; "
                              "stopping early", RuntimeWarning, stacklevel=2)
                break
            t = time.perf_counter()
            evaluation = problem.evaluate(genes)
            clock.evaluate += time.perf_counter() - t
            searcher.tell(genes, evaluation)
            bar.update(len(searcher.history) - n)
            if refiner is not None and refiner.due(len(searcher.history)):
                t = time.perf_counter()
                summary = refiner.refine(searcher)
                clock.refine += time.perf_counter() - t
                bar.set_postfix(round=summary["round"], tau=summary["kendall_tau"])
                checkpoint()
                last_save = time.perf_counter()
            elif time.perf_counter() - last_save >= CHECKPOINT_SECONDS:
                checkpoint()
                last_save = time.perf_counter()
    clock.search += time.perf_counter() - start
    clock.search_cpu += time.process_time() - start_cpu


# ----- the front door -----------------------------------------------------------------------------
@dataclass
class _Job:
    """Everything a search needs once the inputs are loaded and checked."""

    space: SearchSpace
    problem: SpaceProblem
    algo: str
    budget: int
    seed: int
    settings: dict[str, Any]
    inputs: dict[str, Any]
    options: dict[str, Any]
    out: Path | None
    progress: bool
    measured: MeasuredAccuracy | None = None
    report: FeasibilityReport | None = None
    state: dict[str, Any] | None = None
    clock: _Clock = field(default_factory=_Clock)
    info: dict[str, Any] = field(default_factory=dict)
    refiner: Any = None
    resumed_at: int = 0

    @property
    def state_path(self) -> Path | None:
        return None if self.out is None else self.out / STATE_FILE

    def save_state(self, payload: Mapping[str, Any]) -> None:
        if self.state_path is not None:
            _write_state(self.state_path, self.settings, payload)


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
    front/<arch_id>.json, search.json and state.json.

    ``objectives``/``constraints``: strings (``"max:accuracy"``, ``"latency_ms<=5"``) or parsed
    objects. ``predictor``: a directory written by ``nas fit`` or an ``ArchPredictor``; ``table``:
    a latency table path or ``LatencyTable``; ``run_dir``: a ``nas train`` run (accuracy is then
    MEASURED when no predictor is given; with a predictor and ``validate_every`` the search is
    refined LINAS-style, see :mod:`nas.search.refine`). ``algo``: evolution, random, optuna
    (``sampler`` tpe or nsga2, ``storage`` an Optuna storage URL or object, default in memory),
    mp (``mp_points`` MILP solutions, default min(budget, 20)). ``ray_address`` (``"local"``,
    ``"auto"``, ``"host:port"``): optuna trials as Ray Tune trials; measurements as Ray tasks.
    ``population``: NSGA-II / regularised-evolution / Optuna NSGA-II population (default 20).
    ``resume``: continue the search in ``out`` (same settings; ``budget`` may grow).

    Raises :class:`~nas.errors.UserError` before evaluating anything for bad inputs, and
    :class:`~nas.search.feasibility.InfeasibleError` (a UserError) for constraints no
    architecture meets, naming the smallest achievable value of each constrained quantity.
    """
    t_total = time.perf_counter()
    job = _prepare(
        space, objectives=objectives, constraints=constraints, algo=algo, budget=budget,
        seed=seed, predictor=predictor, table=table, run_dir=run_dir, out=out,
        progress=progress, resume=resume, device=device, workers=workers,
        eval_settings=eval_settings,
        options={"validate_every": validate_every, "validate_top": validate_top,
                 "ray_address": ray_address, "sampler": sampler, "storage": storage,
                 "study_name": study_name, "population": population, "mp_points": mp_points,
                 "samples": samples, "workers": workers, "device": device, "command": command},
    )
    t = time.perf_counter()
    job.report = ensure_feasible(job.problem)
    job.info["feasibility_s"] = time.perf_counter() - t
    job.info["warnings"] = _model_warnings(job.problem)
    if resume and job.state_path is not None and job.state_path.exists():
        job.state = _read_state(job.state_path, job.settings)
    if algo == "mp":
        result = _search_mp(job)
    elif algo == "optuna" and ray_address is not None:
        result = _search_tune(job)
    else:
        result = _search_loop(job)
    return _finish(job, result, t_total)


def _prepare(
    space: SearchSpace | str | os.PathLike,
    *,
    objectives: Sequence[str | Objective],
    constraints: Sequence[str | Constraint],
    algo: str,
    budget: int,
    seed: int,
    predictor: Any,
    table: Any,
    run_dir: str | os.PathLike | None,
    out: str | os.PathLike | None,
    progress: bool,
    resume: bool,
    device: str,
    workers: int,
    eval_settings: Any,
    options: dict[str, Any],
) -> _Job:
    """Load and check every input; build the problem (nothing is evaluated yet)."""
    if algo not in ALGOS:
        raise UserError(f"--algo {algo!r}: expected one of {', '.join(ALGOS)}")
    if budget < 1:
        raise UserError(f"--budget {budget}: expected at least 1")
    every = options["validate_every"]
    space = _space(space)
    objs = _objectives(objectives)
    cons = parse_constraints(constraints)
    inputs = {"predictor": _label(predictor), "table": _label(table),
              "run_dir": None if run_dir is None else str(run_dir)}
    predictor = _predictor(predictor, space)
    table = _table(table, space)
    out_path = Path(out) if out is not None else None
    if resume and out_path is None:
        raise UserError("resuming needs the --out folder of the interrupted search")
    if out_path is not None and (out_path / STATE_FILE).exists() and not resume:
        raise UserError(f"{out_path} already holds a search ({STATE_FILE}); pass --resume to "
                        "continue it or choose another --out")
    if every is not None and (predictor is None or run_dir is None):
        raise UserError("--validate-every needs both --predictor (what the search runs on) and "
                        "--run (the supernet that measures the best candidates)")
    if every is not None and algo not in ("evolution", "random"):
        raise UserError("--validate-every refines evolution or random search (an Optuna study or "
                        "a MILP cannot be re-scored after the predictor is refitted)")
    if options["ray_address"] is not None and algo == "mp":
        raise UserError("--ray-address is for --algo optuna (Ray Tune trials) or measured "
                        "accuracy (Ray tasks); the MILP runs in this process")
    if algo != "optuna" and (options["sampler"] or options["storage"] is not None):
        raise UserError("--sampler and --storage are options of --algo optuna")

    measured = None
    if run_dir is not None:
        from nas.train.rundir import load_supernet, read_config

        run_hash = read_config(run_dir)[1].get("space", {}).get("hash")
        if run_hash != space.hash():
            raise IncompatibleFileError(
                f"run {run_dir} trained a space with hash {run_hash}, not {space.name!r} (hash "
                f"{space.hash()})"
            )
        if predictor is None or every is not None:  # the supernet is needed: load it
            if eval_settings is None and predictor is not None:
                eval_settings = _sample_settings(predictor, options["samples"])
            run = load_supernet(run_dir, device=device, load_data=True)
            measured = MeasuredAccuracy.from_run(run_dir, settings=eval_settings, device=device,
                                                 workers=workers,
                                                 ray_address=options["ray_address"], run=run)
    extra: list[str] = []
    if algo == "mp" and predictor is None:
        if measured is not None:
            raise UserError("--algo mp optimises an additive predictor (--predictor) or, with "
                            "neither --predictor nor --run, the DeepMAD score; it does not "
                            "measure accuracy")
        objs = tuple(Objective(DEEPMAD, "maximize") if o.metric in ACCURACY_METRICS else o
                     for o in objs)
        extra.append(DEEPMAD)
    problem = SpaceProblem(space, objs, cons, predictor=predictor, table=table,
                           measured=measured if predictor is None else None, extra_metrics=extra)
    settings = {
        "space_hash": space.hash(),
        "objectives": [str(o) for o in objs],
        "constraints": [str(c) for c in cons],
        "algo": algo,
        "sampler": options["sampler"],
        "storage": _label(options["storage"]),
        "study_name": options["study_name"],
        "seed": int(seed),
        "population": options["population"],
        "mp_points": options["mp_points"],
        "predictor": None if predictor is None else _digest(predictor.card),
        "table": _table_digest(table),
        "run": None if run_dir is None else str(Path(run_dir).resolve()),
        "validate_every": every,
        "validate_top": options["validate_top"] if every else None,
        "tune": options["ray_address"] is not None and algo == "optuna",
    }
    return _Job(space, problem, algo, int(budget), int(seed), settings, inputs, options,
                out_path, progress, measured=measured)


def _search_mp(job: _Job) -> SearchResult:
    """The MILP's solutions (re-solved unless a state file holds them) as a SearchResult."""
    points = int(job.options["mp_points"] or min(job.budget, DEFAULT_MP_POINTS))
    if job.state is not None and "mp" in job.state:
        genes = np.asarray(job.state["mp"]["genes"], dtype=np.int64)
        job.info["mp"] = job.state["mp"]["record"]
        job.resumed_at = len(genes)
    else:
        t, c = time.perf_counter(), time.process_time()
        genes, job.info["mp"] = _mp_genes(job.problem, points, job.progress)
        job.clock.search = time.perf_counter() - t
        job.clock.search_cpu = time.process_time() - c
        job.save_state({"mp": {"genes": genes.tolist(), "record": job.info["mp"]}})
    t = time.perf_counter()
    result = _result_of(job.problem, genes, "mp", job.seed)
    job.clock.evaluate = time.perf_counter() - t
    return result


def _study_name(job: _Job) -> str:
    return job.options["study_name"] or f"nas-search-{job.space.name}-seed{job.seed}"


def _search_tune(job: _Job) -> SearchResult:
    """Optuna trials run as Ray Tune trials (:mod:`nas.search.ray_tune`)."""
    from nas.search.ray_tune import tune_search

    t = time.perf_counter()
    result, job.info["ray_tune"] = tune_search(
        job.problem, budget=job.budget, seed=job.seed, sampler=job.options["sampler"],
        storage=job.options["storage"], study_name=_study_name(job),
        ray_address=job.options["ray_address"], population=job.options["population"],
        max_concurrent=job.options["workers"] if job.measured is not None else 1,
        progress=job.progress, state=job.state, save_state=job.save_state,
    )
    job.clock.search = time.perf_counter() - t
    job.resumed_at = int(job.info["ray_tune"].get("resumed_at", 0))
    return result


def _search_loop(job: _Job) -> SearchResult:
    """evolution, random or optuna through ask/tell, with checkpoints and refinement."""
    from nas.search.optuna_resume import (
        replay_study,
        restore_sampler_rng,
        sampler_rng_state,
        study_snapshot,
    )

    problem, state, opts = job.problem, job.state, job.options
    storage, name = opts["storage"], None
    in_memory = False
    if job.algo == "optuna":
        name = _study_name(job)
        if storage is None:  # in memory: resumed by replaying the snapshot in the state file
            import optuna

            storage, in_memory = optuna.storages.InMemoryStorage(), True
            if state is not None and "optuna_study" in state:
                replay_study(storage, state["optuna_study"])
        elif state is None:
            _refuse_existing_study(storage, name)
    searcher = make_space_searcher(job.algo, problem, seed=job.seed, population=opts["population"],
                                   sampler=opts["sampler"], storage=storage, study_name=name)
    searcher.feasibility = job.report
    if opts["validate_every"] is not None:
        from nas.search.refine import Refiner

        job.refiner = Refiner(problem, job.measured, every=opts["validate_every"],
                              top=opts["validate_top"], samples=opts["samples"])
    if state is not None:
        if job.refiner is not None:
            job.refiner.load_state_dict(state.get("refine", {}))
        searcher.load_state_dict(state["searcher"])
        if "optuna_rng" in state:
            restore_sampler_rng(searcher.study.sampler, state["optuna_rng"])
        job.resumed_at = len(searcher.history)
        metrics = searcher.history.evaluation.metrics
        if problem.accuracy_source == "measured" and "val_acc" in metrics:
            ids = [a.arch_id() for a in problem.decode(searcher.history.genes)]
            job.measured.remember(ids, metrics["val_acc"])

    def checkpoint() -> None:
        payload: dict[str, Any] = {"searcher": searcher.state_dict()}
        if job.refiner is not None:
            payload["refine"] = job.refiner.state_dict()
        if job.algo == "optuna":
            payload["optuna_rng"] = sampler_rng_state(searcher.study.sampler)
            if in_memory:
                payload["optuna_study"] = study_snapshot(searcher.study)
        job.save_state(payload)

    try:
        _drive(searcher, job.budget, refiner=job.refiner, clock=job.clock, checkpoint=checkpoint,
               progress=job.progress, desc=f"nas search ({job.algo})")
    except KeyboardInterrupt:
        if job.state_path is not None and job.state_path.exists():
            log.warning("interrupted: %s holds the last checkpoint; rerun with --resume",
                        job.state_path)
        raise
    checkpoint()
    if job.algo == "optuna":
        job.info["optuna"] = {"study_name": searcher.study.study_name,
                              "storage": _label(opts["storage"]) or "in memory",
                              "sampler": searcher.sampler_name,
                              "duplicate_suggestions": searcher.duplicates}
    return searcher.result()


def _finish(job: _Job, result: SearchResult, t_total: float) -> SearchOutcome:
    """Re-check the front, then write every output."""
    problem, space = job.problem, job.space
    front, dropped = emitted_front(problem, result)
    n = len(result)
    opts = job.options
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "command": opts["command"],
        "space": {"name": space.name, "hash": space.hash(), "source": space.source},
        "settings": {**job.settings, "budget": job.budget, "ray_address": opts["ray_address"],
                     "workers": opts["workers"], "device": opts["device"]},
        "inputs": {**job.inputs, "metrics": problem.describe()},
        "feasibility": _report_dict(job.report),
        "counts": {"evaluated": n, "feasible": int(result.feasible.sum()), "front": len(front),
                   "resumed_at": job.resumed_at, "dropped_by_exact_recheck": dropped},
        "front_ids": [m.arch_id for m in front],
        **{k: v for k, v in job.info.items() if k != "feasibility_s"},
    }
    refiner = job.refiner
    if refiner is not None:
        summary["refine"] = {"every": opts["validate_every"], "top": opts["validate_top"],
                             "samples": str(refiner.training.path), "rounds": refiner.rounds,
                             "measured": len(refiner.new)}
    if job.measured is not None:
        summary["measurements"] = {"this_call": job.measured.measured,
                                   "seconds": round(job.measured.seconds, 3)}
    paths: dict[str, Path] = {}
    t_write = time.perf_counter()
    if job.out is not None:
        if refiner is not None:
            saved = refiner.save_predictor(job.out / "predictor")
            summary["refine"]["predictor"] = None if saved is None else str(saved)
        summary["title"] = _title(space, problem, job.algo, n)
        summary["timings"] = _timings(job, n, t_total, 0.0)
        paths = write_outputs(
            job.out, result=result, archs=problem.decode(result.genes) if n else [],
            front=front, constraints=problem.constraints, summary=summary,
            measured=None if job.measured is None else job.measured.known(),
            refine_records=None if refiner is None else refiner.records,
            space={"name": space.name, "hash": space.hash()},
        )
        paths["state"] = job.state_path
    summary["timings"] = _timings(job, n, t_total, time.perf_counter() - t_write)
    if job.out is not None:  # again, with the time the writing took
        atomic_write_json(job.out / "search.json", summary)
    return SearchOutcome(front, result, summary, paths)


def _sample_settings(predictor: Any, samples: str | os.PathLike | None) -> Any:
    """The evaluation settings the predictor's samples were measured with (so new measurements
    are comparable); the defaults when the samples' sidecar is not there."""
    from nas.sample.measure import EvalSettings
    from nas.sample.store import read_sidecar

    path = samples or ((getattr(predictor, "card", {}) or {}).get("samples") or {}).get("path")
    try:
        evaluation = read_sidecar(path).get("evaluation", {}) if path else {}
    except UserError:
        evaluation = {}
    keys = ("recal_batches", "recal_batch_size", "batch_size", "seed")
    return EvalSettings(**{k: evaluation[k] for k in keys if k in evaluation})


def _model_warnings(problem: SpaceProblem) -> list[str]:
    """Things about the models a user should know (logged and kept in search.json)."""
    out = []
    uses = {*problem.objective_names, *(c.metric for c in problem.constraints)}
    if uses & {"latency_ms", "latency"} and problem.latency is not None:
        found = problem.achievable_range("latency_ms")
        if found is not None and found[0] < 0:
            out.append(
                f"the latency table's calibration predicts {found[0]:.4g} ms for the fastest "
                "subnet of the space (exact minimum): it extrapolates below zero, so predicted "
                "latencies of extreme subnets are unreliable; recalibrate the table"
            )
    for text in out:
        log.warning("nas search: %s", text)
    return out


def _refuse_existing_study(storage: Any, name: str | None) -> None:
    import optuna

    if name is None:
        return
    try:
        names = optuna.study.get_all_study_names(storage)
    except Exception:
        return
    if name in names:
        raise UserError(f"the Optuna storage already holds a study {name!r}; pass --resume to "
                        "continue it, or --study-name for a new one")


def _report_dict(report: FeasibilityReport) -> dict[str, Any]:
    return {
        "feasible": report.feasible,
        "joint": report.joint,
        "message": report.message(),
        "checks": [{"constraint": str(c.constraint), "best_achievable": c.best_achievable,
                    "feasible": c.feasible} for c in report.checks],
    }


def _timings(job: _Job, n: int, t_total: float, write_s: float) -> dict[str, Any]:
    clock, n_new = job.clock, n - job.resumed_at
    per = clock.search / n_new * 1000 if n_new > 0 else None
    return {
        "total_s": round(time.perf_counter() - t_total, 3),
        "feasibility_s": round(job.info.get("feasibility_s", 0.0), 3),
        "search_s": round(clock.search, 3),
        "search_cpu_s": round(clock.search_cpu, 3),
        "evaluate_s": round(clock.evaluate, 3),
        "refine_s": round(clock.refine, 3),
        "write_s": round(write_s, 3),
        "evaluations_this_call": n_new,
        "search_s_per_1000_evaluations": None if per is None else round(per, 4),
    }


def _title(space: SearchSpace, problem: SpaceProblem, algo: str, n: int) -> str:
    cons = ", ".join(problem.constraint_names) or "no constraints"
    return f"{space.name}: {algo}, {n} evaluations; {cons}"
