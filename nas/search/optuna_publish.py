"""The Optuna study a user opens with Optuna's own tools (``optuna-dashboard``,
``optuna.visualization``, ``study.trials_dataframe()``): one trial per distinct architecture.

:class:`~nas.search.optuna_search.OptunaSearch` samples on a study in memory, where the sampler
also sees its duplicate suggestions; this module publishes each distinct evaluated architecture
once to the user's storage (``--storage sqlite:///study.db``) as a finished trial:

- parameters named by meaning and valued by choice: ``resolution``, ``<stage>.width``,
  ``<stage>.depth``, ``<stage>.layer<j>.kind`` and ``<stage>.layer<j>`` (the layer's short string,
  e.g. ``at_h2_m2``), only for the layers the depth uses (a conditional space, as Optuna's
  define-by-run); problems without a space (tabular benchmarks) keep ``g<i>`` genes;
- values: the objectives in their own direction; constraint values by name, as
  ``trial.set_constraint`` records them (``<= 0`` feasible);
- user attributes: ``arch`` (short string), ``arch_id``, ``arch_json`` and every metric the
  search computed (exact flops, macs, params, memory, param_memory, latency_ms, val_acc, ...).

Writes are batched (``FLUSH_EVERY``). To an RDB storage a batch is one transaction of Optuna's
own ORM rows (:func:`add_trials_rdb`: ``optuna.storages._rdb.models``, the tables Optuna reads
back), because Optuna's ``add_trials`` issues several queries per parameter (0.1-0.4 s per trial
of ~30 parameters here); other storages get ``study.add_trials``. A SQLite URL is opened in WAL
mode with ``synchronous=NORMAL`` (durable across a crash of this process). Publishing is
idempotent by ``arch_id``: a resumed search never publishes an architecture twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLUSH_EVERY = 32  # trials buffered before one write to the user's storage


def open_storage(storage: Any) -> Any:
    """An Optuna storage for ``storage`` (a URL or a storage object); SQLite URLs in WAL mode."""
    if not (isinstance(storage, str) and storage.startswith("sqlite:")):
        return storage
    import optuna
    from sqlalchemy import event

    rdb = optuna.storages.RDBStorage(storage)

    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(rdb.engine, "connect", _pragmas)
    rdb.engine.dispose()  # connections opened before the listener: reopened with the pragmas
    return rdb


def _space_params(space: Any, arch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from optuna.distributions import CategoricalDistribution

    from nas.spaces.ops import stage_layer_choices

    params: dict[str, Any] = {"resolution": arch.resolution}
    dists: dict[str, Any] = {"resolution": CategoricalDistribution(list(space.resolutions))}
    for i, (spec, stage) in enumerate(zip(space.stages, arch.stages)):
        name = spec.name or f"stage{i}"
        params[f"{name}.width"], params[f"{name}.depth"] = stage.width, stage.depth
        dists[f"{name}.width"] = CategoricalDistribution(list(spec.widths))
        dists[f"{name}.depth"] = CategoricalDistribution(list(spec.depths))
        layers = [c.to_str() for c in stage_layer_choices(spec)]
        for j, layer in enumerate(stage.layers):
            params[f"{name}.layer{j}.kind"] = layer.kind
            dists[f"{name}.layer{j}.kind"] = CategoricalDistribution(list(spec.kinds))
            params[f"{name}.layer{j}"] = layer.to_str()
            dists[f"{name}.layer{j}"] = CategoricalDistribution(layers)
    return params, dists


def trial_params(problem: Any, genes: np.ndarray) -> tuple[dict[str, Any], dict[str, Any],
                                                            dict[str, Any]]:
    """``(params, distributions, architecture user attributes)`` of one genome."""
    from optuna.distributions import CategoricalDistribution

    space = getattr(problem, "space", None)
    if space is not None and hasattr(problem, "decode"):
        arch = problem.decode(genes[None, :])[0]
        params, dists = _space_params(space, arch)
        attrs = {"arch": arch.to_str(), "arch_id": arch.arch_id(), "arch_json": arch.to_json()}
        return params, dists, attrs
    params = {f"g{i}": int(v) for i, v in enumerate(genes)}
    dists = {f"g{i}": CategoricalDistribution(list(range(int(c))))
             for i, c in enumerate(problem.cardinalities)}
    return params, dists, {"arch_id": "g" + "-".join(str(int(v)) for v in genes)}


def add_trials_rdb(rdb: Any, study_id: int, trials: list[Any]) -> None:
    """Insert finished ``trials`` (FrozenTrials from ``optuna.trial.create_trial``) into study
    ``study_id`` of the RDBStorage ``rdb`` in one transaction, numbered after the study's last
    trial: the rows of Optuna's own tables (``optuna.storages._rdb.models``) that its
    ``_create_new_trial`` writes, as a few bulk INSERTs instead of queries per parameter."""
    import datetime
    import json

    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import func, insert, select

    def utc(value: datetime.datetime | None) -> datetime.datetime | None:  # as models.TrialModel
        return None if value is None else value.astimezone(datetime.timezone.utc).replace(
            tzinfo=None)

    with _create_scoped_session(rdb.scoped_session) as session:  # commits, or rolls back
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        first = session.execute(select(func.count(models.TrialModel.trial_id)).where(
            models.TrialModel.study_id == study_id)).scalar_one()
        session.execute(insert(models.TrialModel), [
            {"study_id": study_id, "number": first + k, "state": t.state,
             "_datetime_start_utc": utc(t.datetime_start),
             "_datetime_complete_utc": utc(t.datetime_complete)}
            for k, t in enumerate(trials)])
        ids = dict(session.execute(
            select(models.TrialModel.number, models.TrialModel.trial_id).where(
                models.TrialModel.study_id == study_id, models.TrialModel.number >= first)).all())
        params, values, user, system = [], [], [], []
        for k, t in enumerate(trials):
            tid = ids[first + k]
            params += [{"trial_id": tid, "param_name": name,
                        "param_value": t.distributions[name].to_internal_repr(value),
                        "distribution_json": distribution_to_json(t.distributions[name])}
                       for name, value in t.params.items()]
            for objective, value in enumerate(t.values):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                values.append({"trial_id": tid, "objective": objective, "value": stored,
                               "value_type": kind})
            user += [{"trial_id": tid, "key": key, "value_json": json.dumps(v)}
                     for key, v in t.user_attrs.items()]
            system += [{"trial_id": tid, "key": key, "value_json": json.dumps(v)}
                       for key, v in t.system_attrs.items()]
        for model, rows in ((models.TrialParamModel, params), (models.TrialValueModel, values),
                            (models.TrialUserAttributeModel, user),
                            (models.TrialSystemAttributeModel, system)):
            if rows:
                session.execute(insert(model), rows)


class StudyPublisher:
    """Publishes distinct evaluations of a searcher's history to ``storage`` (see the module)."""

    def __init__(self, storage: Any, study_name: str | None, problem: Any) -> None:
        import optuna

        self.problem = problem
        self.storage = open_storage(storage)
        self.study = optuna.create_study(
            storage=self.storage, study_name=study_name,
            directions=list(problem.directions), load_if_exists=True,
        )
        self.published = {t.user_attrs.get("arch_id")
                          for t in self.study.get_trials(deepcopy=False)}
        self._buffer: list[Any] = []

    def add(self, genes: np.ndarray, objectives: np.ndarray, constraints: np.ndarray,
            metrics: dict[str, float]) -> None:
        """Buffer one evaluated genome (objectives as the searcher minimises them)."""
        import optuna

        params, dists, attrs = trial_params(self.problem, genes)
        if attrs["arch_id"] in self.published:
            return
        self.published.add(attrs["arch_id"])
        signs = np.array([-1.0 if d == "maximize" else 1.0 for d in self.problem.directions])
        self._buffer.append(optuna.trial.create_trial(
            params=params, distributions=dists, values=(objectives * signs).tolist(),
            user_attrs={**attrs, **{k: float(v) for k, v in metrics.items()}},
            constraints={n: float(c) for n, c in zip(self.problem.constraint_names, constraints)},
        ))
        if len(self._buffer) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        if isinstance(self.storage, optuna_rdb()):
            add_trials_rdb(self.storage, self.study._study_id, self._buffer)
        else:
            self.study.add_trials(self._buffer)
        self._buffer = []


def optuna_rdb() -> type:
    import optuna

    return optuna.storages.RDBStorage
