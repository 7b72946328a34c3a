"""Searchers on a small synthetic space with inactive genes: determinism, resume, no duplicate
query, feasibility of everything emitted, infeasibility reports, state files, Optuna integration."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.errors import IncompatibleFileError, UserError
from nas.search import (
    NSGA2,
    ConstraintViolationError,
    Evaluation,
    GuidedParetoSearch,
    GuidedSearch,
    InfeasibleError,
    OptunaSearch,
    RandomSearch,
    RegularizedEvolution,
    Searcher,
    TabularProblem,
    check_feasibility,
    load_state,
    make_searcher,
    save_state,
)
from nas.search.operators import mutate
from nas.search.state import problem_fingerprint, read_state
from nas.search.surrogate import BayesianLinear

# the toy problem of the shipped conformance suite: 7 genes with inactive ones, 1,884 networks
from nas.search.testing import ToyProblem

SINGLE: dict[str, Callable[[object, int], Searcher]] = {
    "random": lambda p, s: RandomSearch(p, seed=s, batch_size=7),
    "regularized_evolution": lambda p, s: RegularizedEvolution(p, seed=s, population_size=10, sample_size=3),
    "nsga2": lambda p, s: NSGA2(p, seed=s, population_size=12),
    "guided": lambda p, s: GuidedSearch(p, seed=s, n_init=8, batch_size=6, patience=12),
}
MULTI: dict[str, Callable[[object, int], Searcher]] = {
    "random": SINGLE["random"],
    "nsga2": SINGLE["nsga2"],
    "guided_pareto": lambda p, s: GuidedParetoSearch(p, seed=s, n_init=10, batch_size=8),
}
OPTUNA = {
    "optuna-tpe": lambda p, s: OptunaSearch(p, seed=s, sampler="tpe"),
    "optuna-nsga2": lambda p, s: OptunaSearch(p, seed=s, sampler="nsga2", population_size=10),
}


def constrained_problem() -> ToyProblem:
    return ToyProblem(("max:accuracy", "min:latency_ms"), ("latency_ms<=4.5", "params<=18000"))


def assert_unique_canonical(problem: ToyProblem, genes: np.ndarray) -> None:
    np.testing.assert_array_equal(problem.canonical(genes), genes)
    assert len(np.unique(genes, axis=0)) == len(genes)


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_same_seed_same_result(name: str) -> None:
    problem = ToyProblem()
    a = SINGLE[name](problem, 3).run(60)
    b = SINGLE[name](problem, 3).run(60)
    c = SINGLE[name](problem, 4).run(60)
    np.testing.assert_array_equal(a.genes, b.genes)
    np.testing.assert_array_equal(a.objectives, b.objectives)
    assert not np.array_equal(a.genes, c.genes)


@pytest.mark.parametrize(
    ("name", "multi"), [(n, False) for n in sorted(SINGLE)] + [(n, True) for n in sorted(MULTI)]
)
def test_resume_equals_uninterrupted(name: str, multi: bool, tmp_path) -> None:
    problem = constrained_problem() if multi else ToyProblem(constraints=("params<=18000",))
    factory = (MULTI if multi else SINGLE)[name]
    full = factory(problem, 11).run(130)
    first = factory(problem, 11)
    first.run(67)  # stops in the middle of a batch
    path = save_state(first, tmp_path / "state.json")
    resumed = load_state(factory(problem, 999), path)  # the seed comes from the file
    assert resumed.seed == 11
    rest = resumed.run(130)
    np.testing.assert_array_equal(rest.genes, full.genes)
    np.testing.assert_array_equal(rest.constraints, full.constraints)


def test_a_version_1_state_file_resumes_as_the_current_one(tmp_path) -> None:
    """save_state's version-1 layout (the format tag carried the version; the searcher's state
    under "state"), written from the current searcher, loads and resumes identically."""
    problem = ToyProblem(constraints=("params<=18000",))
    full = NSGA2(problem, seed=5).run(90)
    first = NSGA2(problem, seed=5)
    first.run(41)
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"format": "nas.search.state/1",
                                "problem": problem_fingerprint(problem),
                                "state": first.state_dict()}))
    rest = load_state(NSGA2(problem, seed=0), path).run(90)
    np.testing.assert_array_equal(rest.genes, full.genes)
    current = json.loads(save_state(first, tmp_path / "v2.json").read_text())
    assert (current["format"], current["format_version"]) == ("nas.search.state", 2)
    assert read_state(path)["searcher"] == read_state(tmp_path / "v2.json")["searcher"]


@pytest.mark.parametrize("version", [3, 0, "2", None, "missing"])
def test_a_state_file_of_an_unknown_version_is_refused(tmp_path, version) -> None:
    problem = ToyProblem()
    path = save_state(RandomSearch(problem, seed=0), tmp_path / "s.json")
    state = json.loads(path.read_text())
    state["format_version"] = version
    if version == "missing":
        del state["format_version"]
    path.write_text(json.dumps(state))
    with pytest.raises(IncompatibleFileError, match="format version"):
        load_state(RandomSearch(problem, seed=0), path)


@pytest.mark.parametrize("name", sorted(SINGLE) + sorted(OPTUNA))
def test_never_a_duplicate_query(name: str) -> None:
    problem = ToyProblem(constraints=("latency_ms<=5",))
    factory = {**SINGLE, **OPTUNA}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # e.g. a deprecated constraints_func
        result = factory(problem, 0).run(150)
    assert len(result) == 150
    assert_unique_canonical(problem, result.genes)


def test_small_space_runs_out_without_repeating() -> None:
    problem = ToyProblem()
    with pytest.warns(RuntimeWarning, match="no new genome left"):
        result = RegularizedEvolution(problem, seed=0, population_size=20, sample_size=5).run(2500)
    assert len(result) == 1884  # every distinct network exactly once
    assert_unique_canonical(problem, result.genes)


@pytest.mark.parametrize("name", [*sorted(MULTI), "optuna-nsga2"])
def test_emitted_genomes_meet_every_constraint(name: str) -> None:
    problem = constrained_problem()
    result = {**MULTI, **OPTUNA}[name](problem, 1).run(120)
    values = problem.metrics(result.genes)
    emitted = result.front
    assert len(emitted) > 0
    assert (values["latency_ms"][emitted] <= 4.5).all()
    assert (values["params"][emitted] <= 18000).all()
    best = result.best
    assert best is not None and values["latency_ms"][best] <= 4.5
    assert result.feasible[emitted].all()
    frame = result.to_frame()
    assert frame["on_front"].sum() == len(emitted)
    assert (frame.loc[frame["on_front"], "accuracy"] > 0).all()  # accuracy shown maximised again


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lat=st.floats(2.0, 7.0),
    params=st.floats(11_000.0, 25_000.0),
    algo=st.sampled_from(["random", "evolution", "guided", "nsga2"]),
)
def test_property_front_is_feasible_or_infeasibility_is_reported(lat: float, params: float, algo: str) -> None:
    problem = ToyProblem(("max:accuracy", "min:latency_ms"), (f"latency_ms<={lat}", f"params<={params}"))
    values = problem.all_metrics()
    possible = ((values["latency_ms"] <= lat) & (values["params"] <= params)).any()
    if not possible:
        with pytest.raises(InfeasibleError):
            make_searcher(algo, problem, seed=0).run(40)
        return
    result = make_searcher(algo, problem, seed=0).run(40)
    m = problem.metrics(result.genes[result.front])
    assert (m["latency_ms"] <= lat).all() and (m["params"] <= params).all()


def test_infeasibility_report_names_smallest_values() -> None:
    problem = ToyProblem(constraints=("latency_ms<=1.2", "params<=50000", "accuracy>=99"))
    low_latency = problem.all_metrics()["latency_ms"].min()
    report = check_feasibility(problem)
    assert [c.feasible for c in report.checks] == [False, True, False]
    assert report.checks[0].best_achievable == pytest.approx(low_latency)
    with pytest.raises(InfeasibleError) as info:
        RandomSearch(problem, seed=0).run(10)
    message = str(info.value)
    assert "latency_ms<=1.2: smallest achievable latency_ms = " in message
    assert f"{low_latency:.6g}" in message
    assert "accuracy>=99: largest achievable accuracy" in message


def test_joint_infeasibility_is_reported() -> None:
    genes = np.arange(4)[:, None]
    columns = {"flops": np.array([1.0, 2.0, 3.0, 4.0]), "accuracy": np.array([10.0, 20.0, 30.0, 40.0])}
    problem = TabularProblem([4], lambda g: np.asarray(g)[:, 0], columns, ["max:accuracy"],
                             ["flops<=2", "accuracy>=35"])
    report = check_feasibility(problem)
    assert [c.feasible for c in report.checks] == [True, True]
    assert report.joint is False
    with pytest.raises(InfeasibleError, match="no genome meets all of them at once"):
        RandomSearch(problem, seed=0).run(4)
    ok = TabularProblem([4], lambda g: np.asarray(g)[:, 0], columns, ["max:accuracy"], ["flops<=3"])
    result = RandomSearch(ok, seed=0).run(4)
    assert result.genes[result.best].tolist() == [2]
    del genes


def test_unknown_metric_in_a_problem_is_a_user_error() -> None:
    columns = {"flops": np.arange(4.0)}
    with pytest.raises(UserError, match="available"):
        TabularProblem([4], lambda g: np.asarray(g)[:, 0], columns, ["max:accuracy"])


def test_result_recheck_catches_a_violation() -> None:
    problem = ToyProblem(constraints=("latency_ms<=3",))
    searcher = RandomSearch(problem, seed=0)
    genes = searcher.ask(5)
    honest = problem.evaluate(genes)
    # a buggy evaluator that claims every genome is feasible
    searcher.tell(genes, Evaluation(honest.objectives, np.zeros_like(honest.constraints)))
    if (honest.constraints > 0).any():
        with pytest.raises(ConstraintViolationError):
            searcher.result()
    else:  # pragma: no cover - the seed makes some genome infeasible
        pytest.fail("test setup: expected an infeasible genome")


def test_state_file_checks(tmp_path) -> None:
    problem = ToyProblem()
    searcher = RandomSearch(problem, seed=0)
    searcher.run(20)
    path = save_state(searcher, tmp_path / "s.json")
    with pytest.raises(IncompatibleFileError, match="another problem"):
        load_state(RandomSearch(ToyProblem(constraints=("latency_ms<=5",)), seed=0), path)
    with pytest.raises(IncompatibleFileError, match="cannot resume it as"):
        load_state(NSGA2(problem, seed=0), path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(IncompatibleFileError):
        load_state(RandomSearch(problem, seed=0), tmp_path / "bad.json")
    with pytest.raises(UserError):
        load_state(RandomSearch(problem, seed=0), tmp_path / "missing.json")
    state = json.loads(path.read_text())
    assert state["problem"]["cardinalities"] == [3, 4, 3, 4, 3, 4, 3]
    pending = RandomSearch(problem, seed=0)
    pending.ask(2)
    with pytest.raises(RuntimeError, match="untold"):
        pending.state_dict()


def test_optuna_set_constraint_storage_and_resume(tmp_path) -> None:
    from optuna.storages import InMemoryStorage

    from nas.search.optuna_resume import replay_study, study_snapshot

    problem = constrained_problem()
    published = InMemoryStorage()  # the user's storage (a database would do the same)

    def searcher(working) -> OptunaSearch:
        return OptunaSearch(problem, seed=0, sampler="nsga2", storage=published,
                            study_name="toy", population_size=10, working_storage=working)

    first = searcher(InMemoryStorage())
    first.run(30)
    trials = first.study.get_trials()
    assert all(set(t.constraints) == set(problem.constraint_names) for t in trials)
    path = save_state(first, tmp_path / "state.json")
    working = InMemoryStorage()
    replay_study(working, study_snapshot(first.study))  # what nas search keeps in state.json
    again = load_state(searcher(working), path)
    result = again.run(60)
    assert len(result) == 60
    assert_unique_canonical(problem, result.genes)
    assert len(again.study.get_trials()) >= 60  # the sampler's study: duplicates told too
    import optuna

    user = optuna.load_study(study_name="toy", storage=published).get_trials()
    assert len(user) == 60 == len({t.user_attrs["arch_id"] for t in user})  # one per distinct
    assert all(set(t.constraints) == set(problem.constraint_names) for t in user)
    with pytest.raises(IncompatibleFileError, match="snapshot"):
        load_state(OptunaSearch(problem, seed=0, sampler="nsga2"), path)


def test_optuna_storage_url(tmp_path) -> None:
    problem = ToyProblem(constraints=("latency_ms<=5",))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = OptunaSearch(problem, seed=0, sampler="tpe", storage=url, study_name="s").run(3)
    assert len(result) == 3
    import optuna

    study = optuna.load_study(study_name="s", storage=url)
    assert len(study.trials) == 3 and "latency_ms<=5" in study.trials[0].constraints


def test_optuna_single_objective_with_constraints() -> None:
    problem = ToyProblem(constraints=("latency_ms<=4",))
    result = OptunaSearch(problem, seed=0, sampler="tpe").run(40)
    best = result.best
    assert best is not None and problem.metrics(result.genes[best:best + 1])["latency_ms"][0] <= 4


def test_make_searcher() -> None:
    single, multi = ToyProblem(), constrained_problem()
    assert isinstance(make_searcher("evolution", single), RegularizedEvolution)
    assert isinstance(make_searcher("evolution", multi), NSGA2)
    assert isinstance(make_searcher("guided", single), GuidedSearch)
    assert isinstance(make_searcher("guided", multi), GuidedParetoSearch)
    assert make_searcher("optuna", multi).sampler_name == "nsga2"
    assert make_searcher("optuna-tpe", multi).sampler_name == "tpe"
    with pytest.raises(UserError, match="expected one of"):
        make_searcher("annealing", single)
    with pytest.raises(ValueError, match="exactly 2 objectives"):
        GuidedParetoSearch(single)


def test_guided_beats_random_on_the_toy_space() -> None:
    problem = ToyProblem()
    best = problem.all_metrics()["accuracy"].max()
    guided = [GuidedSearch(problem, seed=s, n_init=8, batch_size=6).run(80) for s in range(5)]
    rand = [RandomSearch(problem, seed=s).run(80) for s in range(5)]
    gap_guided = np.mean([best + r.objectives[:, 0].min() for r in guided])
    gap_random = np.mean([best + r.objectives[:, 0].min() for r in rand])
    assert gap_guided < 0.5 * gap_random


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rate=st.sampled_from([None, 0.0, 0.5, 1.0]))
def test_mutation_changes_a_gene_and_stays_in_range(seed: int, rate: float | None) -> None:
    card = np.array([3, 1, 4, 2, 5])
    rng = np.random.default_rng(seed)
    genes = (rng.random((50, 5)) * card).astype(np.int64)
    out = mutate(genes, card, rng, rate=rate)
    assert ((out >= 0) & (out < card)).all()
    assert (out != genes).any(axis=1).all()
    assert (out[:, 1] == 0).all()
    if rate == 0.0:
        assert ((out != genes).sum(axis=1) == 1).all()


def test_bayesian_linear_dual_and_primal_agree() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 12))
    Y = X @ rng.normal(size=(12, 2)) + 0.1 * rng.normal(size=(30, 2))
    test = rng.normal(size=(7, 12))
    primal = BayesianLinear(alpha=2.0, noise=0.1).fit(X, Y)  # n > d
    dual = BayesianLinear(alpha=2.0, noise=0.1).fit(X[:, :], Y, gram=X @ X.T)
    assert not primal.dual_
    dual.dual_ = True  # force the dual path on the same data
    dual = BayesianLinear(alpha=2.0, noise=0.1)
    # the dual form is used when n <= d: pad features with zeros to compare on the same data
    Xp = np.hstack([X, np.zeros((30, 30))])
    dual.fit(Xp, Y)
    assert dual.dual_
    np.testing.assert_allclose(dual.predict(np.hstack([test, np.zeros((7, 30))])), primal.predict(test),
                               rtol=1e-8, atol=1e-8)
    draws = primal.sample(test, np.random.default_rng(1), 4000).mean(axis=0)
    np.testing.assert_allclose(draws, primal.predict(test), atol=0.05 * Y.std())
    draws = dual.sample(np.hstack([test, np.zeros((7, 30))]), np.random.default_rng(1), 4000).mean(axis=0)
    np.testing.assert_allclose(draws, primal.predict(test), atol=0.05 * Y.std())
