"""``SearchJob``: everything ``nas search`` is asked to do, checked before anything is loaded.

A frozen dataclass whose ``__post_init__`` parses the objectives and constraints and refuses, with
one line (:class:`~nas.errors.UserError`, exit code 2 at the CLI), every value or combination that
cannot work: an unknown ``--algo``, a count below its minimum (``--population 0`` or ``1``,
``--mp-points 0``, ``--budget 0``: refused, never replaced by a default), an option the chosen
searcher does not take, too many objectives for it, refinement without its inputs. Loading the
files it names is :mod:`nas.search.run_setup`'s job.
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass
from typing import Any

from nas.errors import UserError
from nas.search.constraints import Constraint, Objective, parse_constraints, parse_objective
from nas.search.registry import OPTION_FLAGS, SearcherSpec, searcher_spec, searcher_specs


def _at_least(flag: str, value: int | None, low: int, why: str = "") -> None:
    if value is None:
        return
    try:
        number = operator.index(value)  # int or numpy integer; not float, not bool
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < low:
        raise UserError(f"{flag} {value!r}: expected an integer of at least {low}{why}")


@dataclass(frozen=True)
class SearchJob:
    """One search: the space, what to optimise under which constraints, with which searcher, on
    which inputs, and where to write. See :func:`nas.search.space_search.run_search` for the
    meaning of each field; ``objectives`` and ``constraints`` are parsed here (strings or parsed
    objects in, tuples of :class:`Objective` / :class:`Constraint` out)."""

    space: Any
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    algo: str = "evolution"
    budget: int = 1000
    seed: int = 0
    predictor: Any = None
    table: Any = None
    run_dir: str | os.PathLike | None = None
    out: str | os.PathLike | None = None
    validate_every: int | None = None
    validate_top: int = 5
    ray_address: str | None = None
    progress: bool = True
    sampler: str | None = None
    storage: Any = None
    study_name: str | None = None
    resume: bool = False
    population: int | None = None
    mp_points: int | None = None
    samples: str | os.PathLike | None = None
    workers: int = 1
    device: str = "cpu"
    eval_settings: Any = None
    command: str | None = None

    def __post_init__(self) -> None:
        objectives = tuple(o if isinstance(o, Objective) else parse_objective(o)
                           for o in self.objectives)
        if not objectives:
            raise UserError("give at least one objective, e.g. --objective max:accuracy")
        if len({o.metric for o in objectives}) != len(objectives):
            raise UserError(f"objectives {[str(o) for o in objectives]} name a metric twice")
        object.__setattr__(self, "objectives", objectives)
        object.__setattr__(self, "constraints", parse_constraints(self.constraints))
        spec = searcher_spec(self.algo)
        spec.check_objectives(len(objectives))
        _at_least("--budget", self.budget, 1)
        _at_least("--seed", self.seed, 0)
        _at_least("--population", self.population, 2,
                  " (tournaments and NSGA-II need two members)")
        _at_least("--mp-points", self.mp_points, 1)
        _at_least("--validate-every", self.validate_every, 1)
        _at_least("--validate-top", self.validate_top, 1)
        _at_least("--workers", self.workers, 1)
        self._check_options(spec)
        self._check_combinations(spec)

    # -- checks ----------------------------------------------------------------------------------
    def _check_options(self, spec: SearcherSpec) -> None:
        for name in self.given_options():
            if name not in spec.options:
                raise UserError(f"{OPTION_FLAGS[name]} is not an option of --algo {spec.name}"
                                f"{_takers(name, 'it is one of')}")

    def _check_combinations(self, spec: SearcherSpec) -> None:
        if self.resume and self.out is None:
            raise UserError("resuming needs the --out folder of the interrupted search")
        if self.validate_every is not None:
            if self.predictor is None or self.run_dir is None:
                raise UserError("--validate-every needs both --predictor (what the search runs "
                                "on) and --run (the supernet that measures the best candidates)")
            if not spec.refinable:
                raise UserError(f"--validate-every cannot refine --algo {spec.name}: its state is "
                                "more than its history, so it cannot be re-scored after the "
                                f"predictor is refitted{_takers(None, 'refinable are')}")
        if self.ray_address is not None and spec.solver:
            raise UserError(f"--ray-address is for Ray Tune trials ({', '.join(_tune_names())}) "
                            "or measured accuracy (Ray tasks); the MILP runs in this process")

    # -- what the searcher gets ------------------------------------------------------------------
    def given_options(self) -> dict[str, Any]:
        """The searcher options set by the user (None = not given), by factory keyword."""
        given = {"population": self.population, "sampler": self.sampler,
                 "storage": self.storage, "study_name": self.study_name,
                 "points": self.mp_points}
        return {k: v for k, v in given.items() if v is not None}

    @property
    def spec(self) -> SearcherSpec:
        return searcher_spec(self.algo)

    @property
    def tune(self) -> bool:
        """Whether the searcher's evaluations run as Ray Tune trials."""
        return self.ray_address is not None and self.spec.tune_trials


def _takers(option: str | None, words: str) -> str:
    """' (WORDS a, b)': the searchers that take ``option`` (None: the refinable ones)."""
    names = [n for n, s in searcher_specs().items()
             if (s.refinable if option is None else option in s.options)]
    return f" ({words} {', '.join(names)})" if names else ""


def _tune_names() -> list[str]:
    return [n for n, s in searcher_specs().items() if s.tune_trials]
