"""Any ask/tell searcher with Ray Tune trials (``nas search --algo optuna --ray-address ADDR``).

Each architecture is one Tune trial: a function trainable evaluates it with the search problem
(shared once through the object store with ``tune.with_parameters``) and reports every metric.
The search algorithm is :class:`AskTellSearcher`, a thin :class:`ray.tune.search.Searcher` over
our own ``ask``/``tell``: ``suggest`` asks our searcher for one genome, ``on_trial_complete`` tells
it the reported metrics. The searcher therefore sees exactly what it sees in process (constraints
included: an Optuna trial gets ``set_constraint`` from :class:`~nas.search.optuna_search.
OptunaSearch` when told), and only Tune's public ``Searcher`` interface is used.

Tune pickles its search algorithm into the experiment folder (for ``Tuner.restore``); ours holds a
live searcher (an Optuna sampler holds a thread lock), so it pickles as an empty shell: a ``nas
search`` resumes from its own state file (``--resume``), never through Tune.

Trials run one at a time by default (``max_concurrent``), so a seeded search gives the same trials
as the in-process search; more concurrent trials trade that for parallelism.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.search.base import Searcher
from nas.search.drive import CHECKPOINT_SECONDS, Clock
from nas.search.problem import Evaluation

PREFIX = "nas_"  # our metrics among the keys Tune adds to a trial's result


def evaluation_of(problem: Any, metrics: Mapping[str, np.ndarray]) -> Evaluation:
    """Objectives and constraint values of the problem from reported metric arrays."""
    n = len(next(iter(metrics.values()))) if metrics else 0
    objectives = np.stack([o.sign * np.asarray(metrics[o.metric], float)
                           for o in problem.objectives], 1) if n else np.zeros((0, 0))
    if problem.constraints and n:
        constraints = np.stack([c.violation(metrics[c.metric]) for c in problem.constraints], 1)
    else:
        constraints = np.zeros((n, len(problem.constraints)))
    return Evaluation(objectives.reshape(n, len(problem.objectives)), constraints,
                      {k: np.asarray(v, float) for k, v in metrics.items()})


def _trainable(config: dict[str, Any], problem: Any) -> None:
    """One Tune trial: evaluate the architecture and report every metric."""
    from ray import tune

    genes = np.array([[int(config[f"g{i}"]) for i in range(problem.n_genes)]], dtype=np.int64)
    ev = problem.evaluate(genes)
    tune.report({PREFIX + k: float(v[0]) for k, v in ev.metrics.items()})


def _tune_searcher_class() -> type:
    """:class:`AskTellSearcher`, defined on first use (Ray is an optional import)."""
    from ray.tune.search import Searcher as TuneSearcher

    class AskTellSearcher(TuneSearcher):
        """Tune's Searcher interface over one of our ask/tell searchers."""

        def __init__(self, ask_tell: Searcher,
                     on_result: Callable[[], None] | None = None) -> None:
            super().__init__()
            self._ask_tell = ask_tell  # not '.searcher': Tune unwraps attributes of that name
            self._on_result = on_result
            self._genes: dict[str, np.ndarray] = {}  # trial_id -> genome in flight
            self.failed: list[str] = []

        def __reduce__(self) -> tuple[Any, ...]:
            return (_empty_shell, ())

        def save(self, checkpoint_path: str) -> None:
            """Not written: a 'nas search' resumes from its own state file (--resume)."""

        def restore(self, checkpoint_path: str) -> None:
            raise NotImplementedError("resume a 'nas search' with --resume, not through Tune")

        def set_search_properties(self, metric: str | None, mode: str | None,
                                  config: dict, **spec: Any) -> bool:
            return True

        def suggest(self, trial_id: str) -> dict[str, int] | str | None:
            genes = self._ask_tell.ask(1)
            if len(genes) == 0:
                return TuneSearcher.FINISHED
            self._genes[trial_id] = genes
            return {f"g{i}": int(v) for i, v in enumerate(genes[0])}

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            genes = self._genes.pop(trial_id, None)
            if genes is None:
                return
            if error or not result:
                self.failed.append(trial_id)
                return
            metrics = {k[len(PREFIX):]: np.array([float(v)]) for k, v in result.items()
                       if k.startswith(PREFIX)}
            self._ask_tell.tell(genes, evaluation_of(self._ask_tell.problem, metrics))
            if self._on_result is not None:
                self._on_result()

        @property
        def in_flight(self) -> int:
            """Trials suggested and not yet complete."""
            return len(self._genes)

    return AskTellSearcher


def _empty_shell() -> None:
    """What a pickled :class:`AskTellSearcher` becomes (Tune's tuner.pkl is never restored)."""
    return None


def make_tune_searcher(ask_tell: Searcher, on_result: Callable[[], None] | None = None) -> Any:
    """An ``AskTellSearcher`` (a Ray Tune ``Searcher``) driving ``ask_tell``."""
    return _tune_searcher_class()(ask_tell, on_result)


def tune_drive(
    searcher: Searcher,
    budget: int,
    *,
    ray_address: str,
    name: str,
    max_concurrent: int = 1,
    clock: Clock | None = None,
    checkpoint: Callable[[], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``searcher`` with Ray Tune trials until its history holds ``budget`` evaluations."""
    from ray import tune
    from tqdm.auto import tqdm

    from nas.distributed import ray_session

    problem = searcher.problem
    measured = getattr(problem, "measured", None)
    if measured is not None:  # a trial is the unit of parallelism: measure inside it
        measured.ray_address = None
    clock = clock if clock is not None else Clock()
    resumed_at = len(searcher.history)
    remaining = budget - resumed_at
    start, start_cpu = time.perf_counter(), time.process_time()
    failed: list[str] = []
    if remaining > 0:
        last = [time.perf_counter()]
        with tqdm(total=budget, initial=resumed_at, desc=f"nas search ({searcher.name}, Ray "
                  "Tune)", unit="trial", disable=not progress, dynamic_ncols=True) as bar:
            def on_result() -> None:
                bar.n = len(searcher.history)
                bar.refresh()
                due = time.perf_counter() - last[0] >= CHECKPOINT_SECONDS
                if checkpoint is not None and due and tune_searcher.in_flight == 0:
                    checkpoint()  # a searcher saves only with nothing in flight
                    last[0] = time.perf_counter()

            tune_searcher = make_tune_searcher(searcher, on_result)
            address = None if ray_address == "local" else ray_address
            # Tune's own experiment folder is temporary: evaluated.csv holds every trial, and its
            # JSON-lines result files would only confuse 'nas export --arch ID' in the run folder.
            with ray_session(address), tempfile.TemporaryDirectory(prefix="nas-tune-") as tmp:
                tuner = tune.Tuner(
                    tune.with_parameters(_trainable, problem=problem),
                    tune_config=tune.TuneConfig(search_alg=tune_searcher, num_samples=remaining,
                                                max_concurrent_trials=max_concurrent,
                                                reuse_actors=True),
                    run_config=tune.RunConfig(name=name, storage_path=tmp, verbose=0),
                )
                tuner.fit()
            failed = tune_searcher.failed
    clock.search += time.perf_counter() - start
    clock.search_cpu += time.process_time() - start_cpu
    if failed:
        raise UserError(f"{len(failed)} Ray Tune trial(s) failed ({', '.join(failed[:3])}); "
                        "see Ray's log, then rerun with --resume")
    return {"trials": len(searcher.history) - resumed_at, "resumed_at": resumed_at,
            "max_concurrent_trials": max_concurrent,
            "seconds": round(time.perf_counter() - start, 3)}
