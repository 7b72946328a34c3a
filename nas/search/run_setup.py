"""From a :class:`~nas.search.job.SearchJob` to a :class:`SearchRun`: load the space, predictor,
latency table and supernet the job names, check that they fit together, and build the
:class:`~nas.search.space_problem.SpaceProblem` (nothing is evaluated yet)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import IncompatibleFileError, UserError
from nas.search.constraints import Objective
from nas.search.drive import Clock
from nas.search.feasibility import FeasibilityReport
from nas.search.job import SearchJob
from nas.search.space_problem import ACCURACY_METRICS, DEEPMAD, MeasuredAccuracy, SpaceProblem
from nas.search.state import STATE_FILE, write_state
from nas.spaces import SearchSpace, load_space

log = logging.getLogger(__name__)


@dataclass
class SearchRun:
    """A search in progress: the job, what it loaded, and what the search has done so far."""

    job: SearchJob
    space: SearchSpace
    problem: SpaceProblem
    settings: dict[str, Any]  # what must match for --resume (kept in the state file)
    inputs: dict[str, Any]
    measured: MeasuredAccuracy | None = None
    report: FeasibilityReport | None = None
    state: dict[str, Any] | None = None
    clock: Clock = field(default_factory=Clock)
    info: dict[str, Any] = field(default_factory=dict)
    refiner: Any = None
    resumed_at: int = 0

    @property
    def out(self) -> Path | None:
        return None if self.job.out is None else Path(self.job.out)

    @property
    def state_path(self) -> Path | None:
        return None if self.out is None else self.out / STATE_FILE

    def save_state(self, payload: Mapping[str, Any]) -> None:
        if self.state_path is not None:
            write_state(self.state_path, self.problem, self.settings, payload)

    @property
    def study_name(self) -> str:
        return self.job.study_name or f"nas-search-{self.space.name}-seed{self.job.seed}"


def prepare(job: SearchJob) -> SearchRun:
    """Load and check every input the job names; build the problem."""
    space = job.space if isinstance(job.space, SearchSpace) else load_space(str(job.space))
    inputs = {"predictor": label(job.predictor), "table": label(job.table),
              "run_dir": None if job.run_dir is None else str(job.run_dir)}
    predictor = _predictor(job.predictor, space)
    table = _table(job.table, space)
    out = None if job.out is None else Path(job.out)
    if out is not None and (out / STATE_FILE).exists() and not job.resume:
        raise UserError(f"{out} already holds a search ({STATE_FILE}); pass --resume to "
                        "continue it or choose another --out")
    measured = _measured(job, space, predictor)
    objs, extra = job.objectives, []
    if job.spec.space_only and predictor is None:  # the MILP: DeepMAD in place of accuracy
        if measured is not None:
            raise UserError(f"--algo {job.algo} optimises an additive predictor (--predictor) "
                            "or, with neither --predictor nor --run, the DeepMAD score; it does "
                            "not measure accuracy")
        objs = tuple(Objective(DEEPMAD, "maximize") if o.metric in ACCURACY_METRICS else o
                     for o in objs)
        extra.append(DEEPMAD)
    problem = SpaceProblem(space, objs, job.constraints, predictor=predictor, table=table,
                           measured=measured if predictor is None else None,
                           extra_metrics=extra)
    settings = {
        "space_hash": space.hash(),
        "objectives": [str(o) for o in objs],
        "constraints": [str(c) for c in job.constraints],
        "algo": job.algo,
        "sampler": job.sampler,
        "storage": label(job.storage),
        "study_name": job.study_name,
        "seed": int(job.seed),
        "population": job.population,
        "mp_points": job.mp_points,
        "predictor": None if predictor is None else _digest(predictor.card),
        "table": _table_digest(table),
        "run": None if job.run_dir is None else str(Path(job.run_dir).resolve()),
        "validate_every": job.validate_every,
        "validate_top": job.validate_top if job.validate_every else None,
        "tune": job.tune,
    }
    return SearchRun(job, space, problem, settings, inputs, measured=measured)


def _measured(job: SearchJob, space: SearchSpace, predictor: Any) -> MeasuredAccuracy | None:
    """The supernet that measures accuracy (no predictor) or refines the predictor."""
    if job.run_dir is None:
        return None
    from nas.train.rundir import load_supernet, read_config

    run_hash = read_config(job.run_dir)[1].get("space", {}).get("hash")
    if run_hash != space.hash():
        raise IncompatibleFileError(
            f"run {job.run_dir} trained a space with hash {run_hash}, not {space.name!r} (hash "
            f"{space.hash()})"
        )
    if predictor is not None and job.validate_every is None:
        return None  # the predictor gives accuracy; the supernet is not needed
    settings = job.eval_settings
    if settings is None and predictor is not None:
        settings = sample_settings(predictor, job.samples)
    run = load_supernet(job.run_dir, device=job.device, load_data=True)
    return MeasuredAccuracy.from_run(job.run_dir, settings=settings, device=job.device,
                                     workers=job.workers, ray_address=job.ray_address, run=run)


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


def label(value: Any) -> str | None:
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


def sample_settings(predictor: Any, samples: str | os.PathLike | None) -> Any:
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


def model_warnings(problem: SpaceProblem) -> list[str]:
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
