"""The end of a ``nas search``: re-check the front, assemble ``search.json``, write every output,
and return a :class:`SearchOutcome`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.arch import Architecture
from nas.io import atomic_write_json
from nas.search.emit import emitted_front
from nas.search.feasibility import FeasibilityReport
from nas.search.outputs import FrontMember, write_outputs
from nas.search.result import SearchResult
from nas.search.run_setup import SearchRun
from nas.search.space_problem import SpaceProblem
from nas.spaces import SearchSpace

SUMMARY_FORMAT = "nas.search.run/1"


@dataclass(frozen=True)
class SearchOutcome:
    """What :func:`~nas.search.space_search.run_search` returns: the emitted front (exact
    metrics), the whole history, the summary written to ``search.json`` and the paths of the files
    written (empty without ``out``)."""

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


def finish(run: SearchRun, result: SearchResult, t_total: float) -> SearchOutcome:
    """Re-check the front, then write every output."""
    job, problem, space = run.job, run.problem, run.space
    front, dropped = emitted_front(problem, result)
    n = len(result)
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "command": job.command,
        "space": {"name": space.name, "hash": space.hash(), "source": space.source},
        "settings": {**run.settings, "budget": job.budget, "ray_address": job.ray_address,
                     "workers": job.workers, "device": job.device},
        "inputs": {**run.inputs, "metrics": problem.describe()},
        "feasibility": _report_dict(run.report),
        "counts": {"evaluated": n, "feasible": int(result.feasible.sum()), "front": len(front),
                   "resumed_at": run.resumed_at, "dropped_by_exact_recheck": dropped},
        "front_ids": [m.arch_id for m in front],
        **{k: v for k, v in run.info.items() if k != "feasibility_s"},
    }
    refiner = run.refiner
    if refiner is not None:
        summary["refine"] = {"every": job.validate_every, "top": job.validate_top,
                             "samples": str(refiner.training.path), "rounds": refiner.rounds,
                             "measured": len(refiner.new)}
    if run.measured is not None:
        summary["measurements"] = {"this_call": run.measured.measured,
                                   "seconds": round(run.measured.seconds, 3)}
    paths: dict[str, Path] = {}
    t_write = time.perf_counter()
    if run.out is not None:
        if refiner is not None:
            saved = refiner.save_predictor(run.out / "predictor")
            summary["refine"]["predictor"] = None if saved is None else str(saved)
        summary["title"] = _title(space, problem, job.algo, n)
        summary["timings"] = _timings(run, n, t_total, 0.0)
        paths = write_outputs(
            run.out, result=result, archs=problem.decode(result.genes) if n else [],
            front=front, constraints=problem.constraints, summary=summary,
            measured=None if run.measured is None else run.measured.known(),
            refine_records=None if refiner is None else refiner.records,
            space={"name": space.name, "hash": space.hash()},
        )
        paths["state"] = run.state_path
    summary["timings"] = _timings(run, n, t_total, time.perf_counter() - t_write)
    if run.out is not None:  # again, with the time the writing took
        atomic_write_json(run.out / "search.json", summary)
    return SearchOutcome(front, result, summary, paths)


def _report_dict(report: FeasibilityReport | None) -> dict[str, Any]:
    assert report is not None, "the feasibility check runs before the search"
    return {
        "feasible": report.feasible,
        "joint": report.joint,
        "message": report.message(),
        "checks": [{"constraint": str(c.constraint), "best_achievable": c.best_achievable,
                    "feasible": c.feasible} for c in report.checks],
    }


def _timings(run: SearchRun, n: int, t_total: float, write_s: float) -> dict[str, Any]:
    clock, n_new = run.clock, n - run.resumed_at
    per = clock.search / n_new * 1000 if n_new > 0 else None
    return {
        "total_s": round(time.perf_counter() - t_total, 3),
        "feasibility_s": round(run.info.get("feasibility_s", 0.0), 3),
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
