"""Optuna samplers (TPE, NSGA-II, or any ``BaseSampler``) behind the :class:`Searcher` interface.

The sampler works on a study in memory (``working_storage``, default a fresh one), where each
genome gene is a categorical parameter ``g<i>``. Constraints go to Optuna with
``trial.set_constraint(name, value)`` (Optuna 5; the deprecated ``constraints_func`` is not used),
so Optuna's constrained TPE and NSGA-II see them. A sampler may suggest a genome that was already
evaluated: that trial is told the stored values at once and costs no query (the budget counts
distinct architectures). After ``max_duplicates`` duplicates in a row a random new genome is
enqueued instead, so the search always moves on.

``storage`` (a URL such as ``sqlite:///study.db`` or any Optuna storage object) receives the
study a user opens with Optuna's tools: one trial per distinct architecture, parameters named by
meaning, the architecture and its exact costs as user attributes
(:mod:`nas.search.optuna_publish`). The sampler never reads from it, so a database storage costs
only its batched writes.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna

from nas.errors import IncompatibleFileError, UserError
from nas.search.base import Searcher
from nas.search.problem import Evaluation, Problem

SAMPLERS = ("tpe", "nsga2")


def make_sampler(
    name: str, *, seed: int, population_size: int = 20, multivariate: bool = True
) -> optuna.samplers.BaseSampler:
    """``tpe`` (multivariate TPE) or ``nsga2`` (NSGA-II), seeded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=multivariate)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size)
    raise UserError(f"unknown Optuna sampler {name!r}; expected one of {SAMPLERS}")


class OptunaSearch(Searcher):
    """Drives an Optuna study with ``study.ask()`` / ``study.tell()``."""

    name = "optuna"

    def __init__(
        self,
        problem: Problem,
        *,
        seed: int = 0,
        sampler: str | optuna.samplers.BaseSampler = "tpe",
        storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        working_storage: optuna.storages.BaseStorage | None = None,
        population_size: int = 20,
        multivariate: bool = True,
        max_duplicates: int = 100,
    ) -> None:
        super().__init__(problem, seed=seed)
        if isinstance(sampler, str):
            self.sampler_name = sampler
            sampler = make_sampler(sampler, seed=seed, population_size=population_size,
                                   multivariate=multivariate)
        else:
            self.sampler_name = type(sampler).__name__
        self.storage = storage
        self.max_duplicates = max_duplicates
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(
                storage=working_storage if working_storage is not None
                else optuna.storages.InMemoryStorage(),
                sampler=sampler,
                study_name=study_name,
                directions=list(problem.directions),
                load_if_exists=working_storage is not None and study_name is not None,
            )
        self.publisher = None
        if storage is not None:
            from nas.search.optuna_publish import StudyPublisher

            self.publisher = StudyPublisher(storage, self.study.study_name, problem)
        self._choices = [list(range(int(c))) for c in problem.cardinalities]
        self._trials: dict[object, list[optuna.trial.Trial]] = {}
        self.duplicates = 0  # trials answered from the history (no query spent)

    def _suggest(self, trial: optuna.trial.Trial) -> np.ndarray:
        genes = np.array([[trial.suggest_categorical(f"g{i}", ch) for i, ch in enumerate(self._choices)]],
                         dtype=np.int64)
        return np.asarray(self.problem.canonical(genes), dtype=np.int64)

    def _tell_trial(self, trial: optuna.trial.Trial, index: int) -> None:
        ev = self.history.evaluation
        for name, value in zip(self.problem.constraint_names, ev.constraints[index]):
            trial.set_constraint(name, float(value))
        signs = np.array([-1.0 if d == "maximize" else 1.0 for d in self.problem.directions])
        values = (ev.objectives[index] * signs).tolist()
        self.study.tell(trial, values if len(values) > 1 else values[0])

    def _propose(self) -> np.ndarray:
        streak = 0
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                trial = self.study.ask()
            genes = self._suggest(trial)
            key = self.history.keys(genes)[0]
            index = self.history.index_of(key)
            if index is not None:  # already evaluated: answer from the history, no query spent
                self._tell_trial(trial, index)
                self.duplicates += 1
                streak += 1
                if streak >= self.max_duplicates:
                    fresh = self.random_new(1)
                    if len(fresh) == 0:
                        return fresh
                    self.study.enqueue_trial({f"g{i}": int(v) for i, v in enumerate(fresh[0])})
                    streak = 0
                continue
            self._trials.setdefault(key, []).append(trial)
            if key in self._pending:  # suggested again while pending: told with the first one
                continue
            return genes

    def _observe(self, genes: np.ndarray, evaluation: Evaluation) -> None:
        for row, key in zip(genes, self.history.keys(genes)):
            index = self.history.index_of(key)
            for trial in self._trials.pop(key, []):
                self._tell_trial(trial, index)
            if self.publisher is not None:
                ev = self.history.evaluation
                self.publisher.add(row, ev.objectives[index], ev.constraints[index],
                                   {k: v[index] for k, v in ev.metrics.items()})

    def flush(self) -> None:
        """Write the buffered trials to the user's storage."""
        if self.publisher is not None:
            self.publisher.flush()

    def state_dict(self) -> dict[str, Any]:
        if self._trials or len(self._queue):
            raise RuntimeError("cannot save an Optuna search with trials in flight; tell them first")
        self.flush()
        return super().state_dict()

    def result(self) -> Any:
        self.flush()
        return super().result()

    def _extra_state(self) -> dict[str, Any]:
        return {"study_name": self.study.study_name, "duplicates": self.duplicates}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if len(self.study.trials) == 0 and len(self.history):
            raise IncompatibleFileError(
                "an Optuna search resumes from the snapshot of its study in the state file "
                "(nas.search.optuna_resume.replay_study into working_storage); none was given"
            )
        if state.get("study_name") != self.study.study_name:
            raise IncompatibleFileError(
                f"state file is for Optuna study {state.get('study_name')!r}, "
                f"this search uses {self.study.study_name!r}"
            )
        self.duplicates = int(state.get("duplicates", 0))
