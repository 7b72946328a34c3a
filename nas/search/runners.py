"""Run the job's searcher (built by :func:`~nas.search.registry.make_searcher`) to a result.

- :func:`run_solver`: a solver (the MILP) proposes its solutions once; they are evaluated in one
  batch, and a state file keeps them so ``--resume`` does not solve again.
- :func:`run_ask_tell`: any other searcher through ``ask``/``tell``, in this process
  (:func:`~nas.search.drive.drive`, with LINAS refinement) or as Ray Tune trials
  (:mod:`nas.search.ray_tune`); checkpoints hold the searcher's state and, for an Optuna study,
  the sampler's random state and (in-memory storage) a snapshot of the study.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from nas.errors import IncompatibleFileError, UserError
from nas.search.base import Searcher
from nas.search.drive import drive
from nas.search.emit import result_of
from nas.search.registry import make_searcher
from nas.search.result import SearchResult
from nas.search.run_setup import SearchRun, label

log = logging.getLogger(__name__)


def run_solver(run: SearchRun) -> SearchResult:
    """The solver's solutions (solved again unless the state file holds them) as a result."""
    job = run.job
    if run.state is not None and "mp" in run.state:
        genes = np.asarray(run.state["mp"]["genes"], dtype=np.int64)
        run.info["mp"] = run.state["mp"]["record"]
        run.resumed_at = len(genes)
    else:
        points = job.mp_points if job.mp_points is not None else min(job.budget, _points())
        searcher = make_searcher(job.algo, run.problem, seed=job.seed, points=points,
                                 progress=job.progress)
        t, c = time.perf_counter(), time.process_time()
        genes = searcher.solve()
        run.clock.search = time.perf_counter() - t
        run.clock.search_cpu = time.process_time() - c
        run.info["mp"] = searcher.record
        run.save_state({"mp": {"genes": genes.tolist(), "record": run.info["mp"]}})
    t = time.perf_counter()
    result = result_of(run.problem, genes, job.algo, job.seed)
    run.clock.evaluate = time.perf_counter() - t
    return result


def _points() -> int:
    from nas.search.algorithms.milp import DEFAULT_POINTS

    return DEFAULT_POINTS


def run_ask_tell(run: SearchRun) -> SearchResult:
    """The job's searcher through ask/tell, with checkpoints, refinement or Ray Tune trials."""
    from nas.search.optuna_resume import (
        replay_study,
        restore_sampler_rng,
        sampler_rng_state,
        study_snapshot,
    )

    job, problem, state = run.job, run.problem, run.state
    options = job.given_options()
    is_study = "storage" in job.spec.options  # an Optuna study: storage, name, sampler RNG
    in_memory = False
    if is_study:
        # the sampler's study is in memory, resumed by replaying the snapshot in the state file;
        # a user's storage receives one trial per distinct architecture (optuna_publish)
        import optuna

        from nas.search.optuna_publish import open_storage

        working, in_memory = optuna.storages.InMemoryStorage(), True
        if state is not None and "optuna_study" in state:
            replay_study(working, state["optuna_study"])
        published = None if job.storage is None else open_storage(job.storage)  # opened once
        if published is not None and state is None:
            _refuse_existing_study(published, run.study_name)
        options.update(storage=published, study_name=run.study_name, working_storage=working)
    searcher = make_searcher(job.algo, problem, seed=job.seed, **options)
    searcher.feasibility = run.report
    if job.validate_every is not None:
        from nas.search.refine import Refiner

        run.refiner = Refiner(problem, run.measured, every=job.validate_every,
                              top=job.validate_top, samples=job.samples)
    if state is not None:
        _restore(run, searcher, state, restore_sampler_rng)

    def checkpoint() -> None:
        payload: dict[str, Any] = {"searcher": searcher.state_dict()}
        if run.refiner is not None:
            payload["refine"] = run.refiner.state_dict()
        if is_study:
            payload["optuna_rng"] = sampler_rng_state(searcher.study.sampler)
            if in_memory:
                payload["optuna_study"] = study_snapshot(searcher.study)
        run.save_state(payload)

    try:
        if job.tune:
            from nas.search.ray_tune import tune_drive

            run.info["ray_tune"] = tune_drive(
                searcher, job.budget, ray_address=job.ray_address, name=run.study_name,
                max_concurrent=job.workers if run.measured is not None else 1,
                clock=run.clock, checkpoint=checkpoint, progress=job.progress)
        else:
            drive(searcher, job.budget, refiner=run.refiner, clock=run.clock,
                  checkpoint=checkpoint, progress=job.progress, desc=f"nas search ({job.algo})")
    except KeyboardInterrupt:
        if run.state_path is not None and run.state_path.exists():
            log.warning("interrupted: %s holds the last checkpoint; rerun with --resume",
                        run.state_path)
        raise
    checkpoint()
    if is_study:
        run.info["optuna"] = {"study_name": searcher.study.study_name,
                              "storage": label(job.storage) or "in memory",
                              "sampler": searcher.sampler_name,
                              "duplicate_suggestions": searcher.duplicates}
    result = searcher.result()
    if job.tune:
        result = dataclasses.replace(result, algorithm=f"{searcher.name}+ray_tune")
    return result


def _restore(run: SearchRun, searcher: Searcher, state: dict[str, Any], restore_rng: Any) -> None:
    if "searcher" not in state:
        raise IncompatibleFileError(f"{run.state_path} was written by another version of 'nas "
                                    "search'; start a new search in another --out")
    if run.refiner is not None:
        run.refiner.load_state_dict(state.get("refine", {}))
    searcher.load_state_dict(state["searcher"])
    if "optuna_rng" in state:
        restore_rng(searcher.study.sampler, state["optuna_rng"])
    run.resumed_at = len(searcher.history)
    metrics = searcher.history.evaluation.metrics
    if run.problem.accuracy_source == "measured" and "val_acc" in metrics:
        ids = [a.arch_id() for a in run.problem.decode(searcher.history.genes)]
        run.measured.remember(ids, metrics["val_acc"])


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
