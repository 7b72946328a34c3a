"""The private Optuna attributes :mod:`nas.search.optuna_resume` relies on, pinned (Optuna has no
public way to save a sampler's random state or to read a study's system attributes; pyproject
bounds Optuna below 6). If this fails after an Optuna upgrade, exact resume of ``--algo optuna``
needs another way."""

from __future__ import annotations

import warnings

import optuna
import pytest

from nas.search.optuna_resume import (
    replay_study,
    restore_sampler_rng,
    sampler_rng_state,
    study_snapshot,
)


@pytest.mark.parametrize("make", [
    lambda: optuna.samplers.TPESampler(seed=3, multivariate=True),
    lambda: optuna.samplers.NSGAIISampler(seed=3, population_size=4),
])
def test_sampler_random_state_round_trips(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = make()
    state = sampler_rng_state(sampler)
    assert {"_rng", "_random_sampler._rng"} <= set(state)  # LazyRandomState attributes
    first = sampler._rng.rng.randint(1 << 30)
    restore_sampler_rng(sampler, state)
    assert sampler._rng.rng.randint(1 << 30) == first


def test_study_system_attributes_survive_a_snapshot():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=0, population_size=4))
    for _ in range(6):
        trial = study.ask()
        x = trial.suggest_categorical("g0", [0, 1, 2])
        study.tell(trial, [x, -x])
    snapshot = study_snapshot(study)
    again = replay_study(optuna.storages.InMemoryStorage(), snapshot)
    assert len(again.trials) == 6
    assert (again._storage.get_study_system_attrs(again._study_id)
            == study._storage.get_study_system_attrs(study._study_id))
