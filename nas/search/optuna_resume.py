"""Resuming an Optuna search exactly: the study's trials and the sampler's random state.

An Optuna storage keeps the trials, not the sampler's random number generators, so a study resumed
from any storage continues with a sampler re-seeded from scratch and proposes other trials than
the uninterrupted run would. :func:`sampler_rng_state` / :func:`restore_sampler_rng` save and
restore every ``LazyRandomState`` of a sampler (TPE and NSGA-II keep theirs there, and in their
nested random sampler).

The default storage of ``nas search --algo optuna`` is in memory (about 3 ms per trial here; the
journal file and SQLite storages took about 100 ms and 600 ms per trial on this 2-core machine
because every write is synced to disk). To resume it, :func:`study_snapshot` records the trials
(parameters, values, system attributes: constraint values and the samplers' own bookkeeping) and
the study's system attributes in the search's state file, and :func:`replay_study` rebuilds the
study in a fresh in-memory storage before the searcher reopens it by name. A user-given storage
URL is resumed from the storage itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

SNAPSHOT_FORMAT = "nas.optuna-snapshot/1"


def _lazy_rngs(sampler: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every ``LazyRandomState`` of an Optuna sampler and its nested samplers, by attribute path."""
    from optuna.samplers import BaseSampler
    from optuna.samplers._lazy_random_state import LazyRandomState

    found = []
    for name, value in sorted(vars(sampler).items()):
        if isinstance(value, LazyRandomState):
            found.append((prefix + name, value))
        elif isinstance(value, BaseSampler):
            found += _lazy_rngs(value, f"{prefix}{name}.")
    return found


def sampler_rng_state(sampler: Any) -> dict[str, Any]:
    """The random state of an Optuna sampler, JSON-serialisable."""
    out = {}
    for path, lazy in _lazy_rngs(sampler):
        name, keys, pos, has_gauss, cached = lazy.rng.get_state(legacy=True)
        out[path] = [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)]
    return out


def restore_sampler_rng(sampler: Any, state: Mapping[str, Any]) -> None:
    """Put back what :func:`sampler_rng_state` saved (paths the sampler lacks are ignored)."""
    rngs = dict(_lazy_rngs(sampler))
    for path, (name, keys, pos, has_gauss, cached) in state.items():
        if path in rngs:
            rngs[path].rng.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos),
                                      int(has_gauss), float(cached)))


def study_snapshot(study: Any) -> dict[str, Any]:
    """The finished trials of ``study`` (categorical integer parameters) and its system attributes."""
    import optuna

    trials = []
    for t in study.get_trials(deepcopy=False):
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        trials.append({
            "params": {k: int(v) for k, v in t.params.items()},
            "choices": {k: list(d.choices) for k, d in t.distributions.items()},
            "values": list(t.values),
            "system_attrs": dict(t.system_attrs),
            "user_attrs": dict(t.user_attrs),
        })
    return {"format": SNAPSHOT_FORMAT, "study_name": study.study_name,
            "directions": [d.name.lower() for d in study.directions],
            "system_attrs": dict(study._storage.get_study_system_attrs(study._study_id)),
            "trials": trials}


def replay_study(storage: Any, snapshot: Mapping[str, Any]) -> Any:
    """Rebuild a snapshotted study in ``storage`` (an empty in-memory storage); returns the study."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    study = optuna.create_study(storage=storage, study_name=snapshot["study_name"],
                                directions=list(snapshot["directions"]))
    for key, value in snapshot.get("system_attrs", {}).items():
        study._storage.set_study_system_attr(study._study_id, key, value)
    frozen = [
        optuna.trial.create_trial(
            params=t["params"],
            distributions={k: CategoricalDistribution(c) for k, c in t["choices"].items()},
            values=t["values"],
            system_attrs=t["system_attrs"],
            user_attrs=t["user_attrs"],
        )
        for t in snapshot.get("trials", [])
    ]
    if frozen:
        study.add_trials(frozen)
    return study


def storage_label(storage: Any) -> str:
    """A URL as given, else the storage's class name."""
    return storage if isinstance(storage, str) else type(storage).__name__

