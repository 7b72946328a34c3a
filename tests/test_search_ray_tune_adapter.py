"""The Ray Tune adapter over ask/tell, without starting Ray: it suggests what our searcher asks,
tells it what a trial reports, pickles (Tune writes it to tuner.pkl; Optuna's NSGA-II sampler
holds a lock that cannot be pickled), and finishes when the searcher runs out."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.registry import make_searcher
from nas.search.testing import ToyProblem

pytest.importorskip("ray.tune")


def test_adapter_gives_the_in_process_trials_and_pickles():
    from ray import cloudpickle

    from nas.search.ray_tune import PREFIX, make_tune_searcher

    problem = ToyProblem(("max:accuracy", "min:latency_ms"), ("latency_ms<=4.5",))
    local = make_searcher("optuna", problem, seed=0)
    local.run(12, check_feasibility=False)
    searcher = make_searcher("optuna", problem, seed=0)
    adapter = make_tune_searcher(searcher)
    assert cloudpickle.loads(cloudpickle.dumps(adapter)) is None  # an empty shell
    for i in range(12):
        config = adapter.suggest(f"t{i}")
        genes = np.array([[config[f"g{j}"] for j in range(problem.n_genes)]])
        metrics = problem.evaluate(genes).metrics
        adapter.on_trial_complete(f"t{i}", {**{PREFIX + k: float(v[0])
                                               for k, v in metrics.items()},
                                            "training_iteration": 1, "done": True})
    assert adapter.in_flight == 0 and not adapter.failed
    np.testing.assert_array_equal(searcher.history.genes, local.history.genes)
    assert all("constraints:latency_ms<=4.5" in t.system_attrs
               for t in searcher.study.trials)


def test_adapter_records_a_failed_trial_and_finishes_when_the_searcher_is_done():
    from ray.tune.search import Searcher

    from nas.search.ray_tune import make_tune_searcher

    adapter = make_tune_searcher(make_searcher("random", ToyProblem(), seed=0))
    adapter.suggest("a")
    adapter.on_trial_complete("a", None, error=True)
    assert adapter.failed == ["a"]
    exhausted = make_tune_searcher(make_searcher("random", ToyProblem(), seed=0))
    exhausted._ask_tell._exhausted = True  # the space ran out
    assert exhausted.suggest("b") == Searcher.FINISHED
