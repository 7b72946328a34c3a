"""The shipped searcher conformance suite (:mod:`nas.search.testing`) over every registered
searcher: a new searcher registered in nas/search/algorithms/ is checked without editing this file."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search import testing
from nas.search.registry import searcher_names, searcher_spec

CHECKS = ("ask_tell", "budget", "seeded", "resume", "constraints")


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", searcher_names())
def test_registered_searcher_conforms(name: str, check: str) -> None:
    spec = searcher_spec(name)
    if check == "resume":
        if not spec.resumable:
            pytest.skip(f"{name} does not resume")
        if "storage" in spec.options:  # an Optuna study resumes from its storage, not a state
            pytest.skip(f"{name} resumes through its Optuna study (tests/test_search_cli.py)")
    objectives = 2 if check == "constraints" and spec.max_objectives != 1 else 1
    factory, problem = testing.registered_case(name, objectives=objectives,
                                               constrained=check == "constraints")
    if check == "ask_tell":
        testing.check_ask_tell(factory, problem)
    elif check == "budget":
        testing.check_budget(factory, problem)
    elif check == "seeded":
        testing.check_seeded(factory, problem, seed_matters=not spec.solver)
    elif check == "resume":
        testing.check_resume(factory, problem)
    else:
        testing.check_constraints(factory, problem)


@pytest.mark.parametrize("name", searcher_names())
def test_every_searcher_respects_a_size_bytes_bound_with_precision_genes(name: str) -> None:
    """Precision genes searched by every registered searcher, the MILP included (per-layer
    precision as a choice, :mod:`nas.search.mp_precision`); what it emits meets size_bytes<=20KB."""
    spec = searcher_spec(name)
    factory, problem = testing.precision_case(name, objectives=1 if spec.max_objectives == 1 else 2)
    testing.check_constraints(factory, problem)
    result = factory(problem, 0).run(60)
    emitted = problem.decode(result.genes[list(result.front)])
    assert any("int8" in arch.precisions() for arch in emitted)  # the genes are searched


def test_the_suite_catches_a_searcher_that_repeats_itself() -> None:
    """A searcher that hands out an evaluated genome again fails check_ask_tell."""
    from nas.search.random_search import RandomSearch

    class Repeating(RandomSearch):
        def ask(self, n: int = 1) -> np.ndarray:
            if len(self.history):
                return self.history.genes[:1].copy()
            return super().ask(n)

    with pytest.raises(AssertionError, match="already evaluated"):
        testing.check_ask_tell(lambda p, s: Repeating(p, seed=s), testing.ToyProblem())


def test_check_searcher_runs_every_check_on_a_user_searcher() -> None:
    from nas.search.random_search import RandomSearch

    testing.check_searcher(lambda p, s: RandomSearch(p, seed=s, batch_size=5),
                           testing.ToyProblem(),
                           testing.ToyProblem(constraints=("latency_ms<=4.5",)))


def test_a_newly_registered_searcher_is_choosable_and_checked(tmp_path, monkeypatch):
    """What one new file in nas/search/algorithms/ does: register; then 'nas search --algo' takes
    it and the conformance suite checks it (the registration is undone after the test)."""
    from nas.cli import main
    from nas.search import registration
    from nas.search.random_search import RandomSearch

    monkeypatch.setattr(registration, "REGISTERED", dict(registration.REGISTERED))
    import nas.search.registry as registry

    monkeypatch.setattr(registry, "REGISTERED", registration.REGISTERED)

    @registration.register_searcher("test-hill", summary="a test searcher", max_objectives=1)
    class Hill(RandomSearch):
        name = "test-hill"

    assert "test-hill" in registry.searcher_names()
    factory, problem = testing.registered_case("test-hill")
    testing.check_searcher(factory, problem)
    out = tmp_path / "hill"
    rc = main(["search", "--space", "hybrid-tiny", "--out", str(out), "--algo", "test-hill",
               "--objective", "min:flops", "--budget", "8", "--no-progress"])
    assert rc == 0 and (out / "front.csv").is_file()
